"""Scale-out: one campaign's send throughput with one "machine" against two. A machine is the Procfile's
processes a second server would run (beat, the default worker, a bulk worker), each set with its own node
names; both share the one PostgreSQL and the one Redis. Two beats run in the two-machine case, as they may
in production (the dispatcher's advisory lock makes the second harmless).

Each case: a fresh campaign to --recipients contacts is sent now; rate = messages / (last - first message
at Postfix's smtp-sink); the database then shows that every recipient was sent exactly once.
Run: bench/run scaleout [--recipients 20000] [--bulk-concurrency 1]
"""

import argparse
import os

from bench.common import (
    Sink,
    audience,
    campaign,
    celery_beat,
    celery_worker,
    clear_campaigns,
    flush_redis,
    log,
    print_table,
    product_env,
    save_result,
    setup_django,
    start_all,
    stop_all,
)


def machine(name: str, env: dict, *, bulk_concurrency: int) -> list:
    beat = celery_beat(env)
    beat.name = f"{name}-beat"
    return [
        beat,
        celery_worker(f"{name}-default", queues="tx_low,default", concurrency=1, env=env),
        celery_worker(f"{name}-bulk", queues="bulk", concurrency=bulk_concurrency, env=env),
    ]


def one(workspace, label, *, machines: int, recipients: int, bulk_concurrency: int) -> dict:
    from django.db.models import Count

    from campaigns.services import campaign_send_now
    from delivery.models import Delivery

    clear_campaigns()
    flush_redis()
    c = campaign(workspace, label, name=f"scaleout x{machines}")
    with Sink() as sink:
        env = product_env(email_url=sink.url)
        procs = [p for i in range(machines) for p in machine("ab"[i], env, bulk_concurrency=bulk_concurrency)]
        start_all(procs)
        try:
            campaign_send_now(workspace=workspace, campaign_id=c.id)
            sink.wait_count(recipients, timeout=1800)
            seconds = sink.last_at - sink.first_at
        finally:
            stop_all(procs)
    deliveries = Delivery.objects.filter(run__campaign=c)
    statuses = dict(deliveries.values_list("status").annotate(n=Count("id")))
    twice = deliveries.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).count()
    return {
        "machines": machines,
        "bulk_processes": machines * bulk_concurrency,
        "messages_at_sink": sink.count,
        "seconds": round(seconds, 2),
        "msgs_per_second": round(sink.count / seconds, 1) if seconds else None,
        "statuses": statuses,
        "recipients_with_two_deliveries": twice,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run scaleout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--bulk-concurrency", type=int, default=1, help="pool processes of each bulk worker")
    args = parser.parse_args(argv)
    setup_django()
    load_before = os.getloadavg()[0]
    workspace, label = audience(f"scale{args.recipients}", args.recipients)
    results = []
    for machines in (1, 2):
        log(f"{machines} machine(s)")
        results.append(
            one(workspace, label, machines=machines, recipients=args.recipients, bulk_concurrency=args.bulk_concurrency)
        )
    base = results[0]["msgs_per_second"]
    rows = [
        [
            r["machines"],
            r["bulk_processes"],
            r["messages_at_sink"],
            r["seconds"],
            r["msgs_per_second"],
            f"{r['msgs_per_second'] / base:.2f}x" if base else "-",
            r["statuses"].get("sent", 0),
            r["recipients_with_two_deliveries"],
        ]
        for r in results
    ]
    table = print_table(
        f"Scale-out: one {args.recipients:,}-recipient campaign, one machine vs two sharing PostgreSQL and Redis "
        f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)",
        ["machines", "bulk processes", "at sink", "seconds", "msg/s", "vs one", "sent", "recipients twice"],
        rows,
    )
    save_result("scaleout", {"args": vars(args), "results": results, "table": table})
    return {"results": results}


if __name__ == "__main__":
    main()
