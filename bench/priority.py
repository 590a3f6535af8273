"""Priority isolation: high-priority transactional messages accepted while a big campaign is going out,
and their accept-to-hand-off latency, with the product's dedicated tx_high workers (the Procfile's
`priority` process) against one shared worker pool that takes bulk and tx_high work alike.

Each mode: a fresh campaign to --recipients contacts is sent now; once its messages are flowing to the
sink, messages are accepted through transactional.services.transactional_send (what POST
/api/v1/transactional?priority=high calls) at --rate per second for --seconds; then the campaign is
stopped. Latency = the message's `sent_at` (written right after the SMTP server's 250) minus its
`created_at` (the accept). Run: bench/run priority [--recipients 100000] [--rate 5] [--seconds 40]
"""

import argparse
import time

from bench.common import (
    Sink,
    audience,
    campaign,
    clear_campaigns,
    engine,
    flush_redis,
    log,
    print_table,
    product_env,
    save_result,
    setup_django,
    start_all,
    stop_all,
    summarize,
)
from bench.precision import clear_transactional


def one(workspace, label, *, shared: bool, rate: float, seconds: int, warmup: int) -> dict:
    from campaigns.services import campaign_send_now, campaign_stop
    from common.errors import ApplicationError
    from transactional.models import TransactionalMessage
    from transactional.services import transactional_send

    clear_campaigns()
    clear_transactional()
    flush_redis()
    c = campaign(workspace, label, name=f"priority shared={shared}")
    with Sink() as sink:
        procs = engine(product_env(email_url=sink.url), shared_pool=shared)
        start_all(procs)
        try:
            campaign_send_now(workspace=workspace, campaign_id=c.id)
            log(f"campaign launched; waiting for {warmup:,} of its messages at the sink")
            sink.wait_count(warmup, timeout=600)
            bulk_before = sink.count
            t0 = time.monotonic()
            ids = []
            for i in range(int(rate * seconds)):
                target = t0 + i / rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                accepted = transactional_send(
                    workspace=workspace,
                    priority="high",
                    sender={"email": "app@mail.example.com", "name": "App"},
                    to=[{"email": f"reset{i}@example.org", "name": "User"}],
                    subject="Reset your password",
                    text="Your code is 123456.",
                    html="<p>Your code is <b>123456</b>.</p>",
                )
                ids += accepted.message_ids
            log("waiting for the transactional messages to be handed off")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if TransactionalMessage.objects.filter(id__in=ids, sent_at__isnull=False).count() == len(ids):
                    break
                time.sleep(0.5)
            span = time.monotonic() - t0
            bulk_rate = (sink.count - bulk_before - len(ids)) / span
            try:
                campaign_stop(workspace=workspace, campaign_id=c.id)
            except ApplicationError:
                log("the campaign had already finished: raise --recipients so it outlasts the measurement")
        finally:
            stop_all(procs)
    rows = list(TransactionalMessage.objects.filter(id__in=ids).values_list("created_at", "sent_at"))
    lags = [(s - a).total_seconds() for a, s in rows if s]
    return {
        "mode": "shared pool (bulk + tx_high on the bulk worker)" if shared else "dedicated tx_high workers",
        "accepted": len(ids),
        "handed_off": len(lags),
        "latency": summarize(lags),
        "bulk_msgs_per_second_meanwhile": round(bulk_rate, 1),
        "lags": lags,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run priority", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=5.0, help="high-priority messages per second")
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=2000, help="campaign messages sent before measuring")
    args = parser.parse_args(argv)
    setup_django()
    workspace, label = audience(f"prio{args.recipients}", args.recipients)
    results = []
    for shared in (False, True):
        log(f"mode: {'shared pool' if shared else 'dedicated tx_high workers'}")
        results.append(
            one(workspace, label, shared=shared, rate=args.rate, seconds=args.seconds, warmup=args.warmup)
        )
    rows = [
        [
            r["mode"],
            r["accepted"],
            r["handed_off"],
            r["latency"]["p50"],
            r["latency"]["p99"],
            r["latency"]["max"],
            r["bulk_msgs_per_second_meanwhile"],
        ]
        for r in results
    ]
    table = print_table(
        f"Priority isolation: high-priority transactional mail during a {args.recipients:,}-recipient campaign "
        f"({args.rate:g}/s for {args.seconds}s), accept -> SMTP hand-off in seconds",
        ["mode", "accepted", "handed off", "p50 s", "p99 s", "max s", "campaign msg/s meanwhile"],
        rows,
    )
    p99 = results[0]["latency"]["p99"]
    targets = {"p99 under 1 s (dedicated)": {"p99": p99, "met": p99 is not None and p99 < 1}}
    for k, v in targets.items():
        print(f"target {k}: {'MET' if v['met'] else 'MISSED'} (p99 {v['p99']})")
    save_result("priority", {"args": vars(args), "results": results, "targets": targets, "table": table})
    return {"results": results}


if __name__ == "__main__":
    main()
