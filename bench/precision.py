"""Schedule precision: campaigns and transactional messages scheduled over a few minutes, sent by the
product's processes as the Procfile runs them (beat with the database scheduler, the priority, default and
bulk workers), and the lag from each one's due time to its SMTP hand-off.

- Campaign launch lag: due time -> its run created (campaigns.services.campaign_launch ran).
- Campaign first hand-off lag: due time -> the first of its messages accepted by the sink.
- Campaign delivery lag: due time -> every one of its messages accepted by the sink.
- Transactional lag: scheduled_at -> the message accepted by the sink.

Hand-off times are the `sent_at` the worker writes right after the SMTP server's 250 answer; the sink's
count confirms every message arrived. Run: bench/run precision [--campaigns 200] [--transactional 5000]
[--recipients 20] [--spread 180]
"""

import argparse
import time
from datetime import timedelta

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


def clear_transactional() -> None:
    from django.db import connection

    from transactional.models import TransactionalMessage

    tables = {
        m._meta.db_table for m in TransactionalMessage._meta.apps.get_app_config("transactional").get_models()
    }
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(sorted(tables))} CASCADE")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run precision", description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=200)
    parser.add_argument("--recipients", type=int, default=20, help="recipients per campaign")
    parser.add_argument("--transactional", type=int, default=5000)
    parser.add_argument("--spread", type=int, default=180, help="seconds over which the due times are spread")
    parser.add_argument("--lead", type=int, default=60, help="seconds from now to the first due time")
    args = parser.parse_args(argv)
    setup_django()
    from django.utils import timezone

    from campaigns.models import Campaign, CampaignRun
    from campaigns.services import campaign_schedule, schedule_parse
    from delivery.models import Delivery

    clear_campaigns()
    flush_redis()
    has_tx = args.transactional > 0
    if has_tx:
        from transactional.models import TransactionalMessage
        from transactional.services import transactional_send

        clear_transactional()
    workspace, label = audience(f"precision{args.recipients}", args.recipients)
    expected = args.campaigns * args.recipients + args.transactional
    with Sink() as sink:
        procs = engine(product_env(email_url=sink.url))
        start_all(procs)
        try:
            base = timezone.now() + timedelta(seconds=args.lead)
            log(
                f"scheduling {args.campaigns} campaigns and {args.transactional} transactional messages over "
                f"{args.spread}s from {base:%H:%M:%S}"
            )
            for i in range(args.campaigns):
                c = campaign(workspace, label, name=f"precision {i}")
                at = base + timedelta(seconds=args.spread * i / max(1, args.campaigns))
                request = schedule_parse(schedule_type="scheduled", scheduled_at=at.isoformat())
                campaign_schedule(workspace=workspace, campaign_id=c.id, request=request)
            for i in range(args.transactional):
                at = base + timedelta(seconds=args.spread * i / args.transactional)
                transactional_send(
                    workspace=workspace,
                    priority="high" if i % 2 else "low",
                    sender={"email": "app@mail.example.com", "name": "App"},
                    to=[{"email": f"user{i}@example.org", "name": f"User {i}"}],
                    subject=f"Your receipt {i}",
                    text="Thanks for your order.",
                    html="<p>Thanks for your order.</p>",
                    scheduled_at=at,
                )
            late = (timezone.now() - base).total_seconds()
            if late > 0:
                log(f"warning: scheduling took {late:.1f}s past the first due time; raise --lead")
            last_due = base + timedelta(seconds=args.spread)
            wait = (last_due - timezone.now()).total_seconds() + 180
            log(f"waiting for {expected:,} messages at the sink (up to {wait:.0f}s)")
            try:
                sink.wait_count(expected, timeout=wait)
            except TimeoutError as exc:
                log(str(exc))
            time.sleep(2)  # the last rows' marks are written right after the send
        finally:
            stop_all(procs)

    campaigns = Campaign.objects.filter(workspace=workspace)
    due = dict(campaigns.values_list("id", "scheduled_at"))
    runs = list(CampaignRun.objects.filter(campaign__in=campaigns).values_list("campaign_id", "created_at"))
    launch = [(created - due[cid]).total_seconds() for cid, created in runs]
    first: dict = {}
    every = []
    for cid, sent_at in Delivery.objects.filter(campaign__in=campaigns, sent_at__isnull=False).values_list(
        "campaign_id", "sent_at"
    ):
        lag = (sent_at - due[cid]).total_seconds()
        every.append(lag)
        first[cid] = min(first.get(cid, lag), lag)
    results = {
        "campaign launch (due -> run created)": summarize(launch),
        "campaign first message (due -> hand-off)": summarize(list(first.values())),
        "campaign every message (due -> hand-off)": summarize(every),
    }
    if has_tx:
        tx = list(
            TransactionalMessage.objects.filter(workspace=workspace, sent_at__isnull=False).values_list(
                "priority", "scheduled_at", "sent_at"
            )
        )
        results["transactional (scheduled_at -> hand-off)"] = summarize(
            [(s - d).total_seconds() for _, d, s in tx]
        )
        for priority in ("high", "low"):
            results[f"  of which priority={priority}"] = summarize(
                [(s - d).total_seconds() for p, d, s in tx if p == priority]
            )
    missing = {
        "campaigns never launched": args.campaigns - len(runs),
        "campaign messages not sent": args.campaigns * args.recipients - len(every),
        "sink received": sink.count,
        "expected": expected,
    }
    rows = [[name, r["n"], r["p50"], r["p90"], r["p99"], r["max"]] for name, r in results.items()]
    table = print_table(
        f"Schedule precision: {args.campaigns} campaigns x {args.recipients} recipients and {args.transactional} "
        f"transactional messages due over {args.spread}s (lag in seconds)",
        ["what", "n", "p50 s", "p90 s", "p99 s", "max s"],
        rows,
    )
    print(f"completeness: {missing}")
    launch_p99 = results["campaign launch (due -> run created)"]["p99"]
    targets = {"launch p99 under 1 s": {"p99": launch_p99, "met": launch_p99 is not None and launch_p99 < 1}}
    for k, v in targets.items():
        print(f"target {k}: {'MET' if v['met'] else 'MISSED'} (p99 {v['p99']})")
    lags = {
        "campaign_every_message": every,
        "transactional": [(s - d).total_seconds() for _, d, s in tx] if has_tx else [],
    }
    save_result(
        "precision",
        {
            "args": vars(args),
            "results": results,
            "completeness": missing,
            "targets": targets,
            "table": table,
            "lags": lags,
        },
    )
    return results


if __name__ == "__main__":
    main()
