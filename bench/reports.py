"""Reports: how fast the figures answer for a big campaign, and how far behind they run while events keep
arriving.

1. A campaign run of --recipients recipients and 5 events each (sent, delivered, two opens of which one in
   ten is a machine open, a click on one of five links), written with SQL, spread over three days.
2. Catch-up: the product's beat and one `default` worker (Procfile-style subprocesses) aggregate that
   backlog; events/s from the first to the last counted event.
3. Query time: GET /api/v1/reports/basic, link and open-time through the whole Django/DRF stack (in this
   process, a real API key), side by side with the same `basic` figures computed from the event table in
   one SQL statement (what a report without rollups costs).
4. Lag under a stream: this process writes --rate events/s (batches every 100 ms) for --seconds while beat
   and the worker keep aggregating; every 0.5 s it samples how old the oldest uncounted event is.

Run: bench/run reports [--recipients 1000000] [--rate 2000] [--seconds 60] [--repeat 30]
"""

import argparse
import threading
import time

from bench.common import (
    celery_beat,
    celery_worker,
    flush_redis,
    log,
    print_table,
    product_env,
    save_result,
    setup_django,
    start_all,
    stop_all,
    summarize,
    wait_for,
)


def clear() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE delivery_event, delivery_delivery, campaigns_campaignrun, campaigns_campaign_labels, "
            "campaigns_campaign, reports_aggregationstate, reports_pendingevent, reports_runreport, "
            "reports_recipientactivity, reports_linkreport, reports_linkclicker, reports_openslot CASCADE"
        )


def fill(run, recipients: int) -> int:
    from django.db import connection

    select = (
        "SELECT %s, {type}, now() - (random() * interval '3 days'), 'r' || i || '@example.org', '', %s, %s, {data} "
        "FROM generate_series(1, %s) i{extra}"
    )
    insert = (
        "INSERT INTO delivery_event (workspace_id, type, occurred_at, email, message_id, campaign_id, run_id, data) "
    )
    kinds = [
        ("'sent'", "'{}'::jsonb", ""),
        ("'delivered'", "'{}'::jsonb", ""),
        ("'opened'", "jsonb_build_object('machine', (i + t) %% 10 = 0)", ", generate_series(1, 2) t"),
        ("'clicked'", "jsonb_build_object('url', 'https://shop.example.com/item/' || (i %% 5))", ""),
    ]
    with connection.cursor() as cursor:
        for type, data, extra in kinds:
            cursor.execute(
                insert + select.format(type=type, data=data, extra=extra),
                [run.workspace_id, run.campaign_id, run.pk, recipients],
            )
        cursor.execute("VACUUM ANALYZE delivery_event")
        cursor.execute("SELECT count(*) FROM delivery_event")
        return cursor.fetchone()[0]


def naive_basic(run) -> None:
    """The basic figures straight from the event table: what each request would cost without rollups."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE type = 'sent'), count(*) FILTER (WHERE type = 'opened' AND "
            "NOT coalesce((data->>'machine')::boolean, false)), count(DISTINCT email) FILTER (WHERE type IN "
            "('opened', 'clicked') AND NOT coalesce((data->>'machine')::boolean, false)), "
            "count(*) FILTER (WHERE type = 'clicked'), count(DISTINCT email) FILTER (WHERE type = 'clicked') "
            "FROM delivery_event WHERE campaign_id = %s",
            [run.campaign_id],
        )
        cursor.fetchone()


def timed(call, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run reports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=2000, help="events per second in the stream")
    parser.add_argument("--seconds", type=int, default=60, help="length of the stream")
    parser.add_argument("--repeat", type=int, default=30, help="requests per endpoint")
    parser.add_argument("--every", type=int, default=5, help="REPORTS_AGGREGATE_EVERY_SECONDS for beat")
    args = parser.parse_args(argv)
    setup_django()
    from django.db import connection
    from django.utils import timezone
    from rest_framework.test import APIClient

    from accounts.models import Workspace
    from accounts.services import api_key_create
    from campaigns.models import Campaign, CampaignRun
    from common.periodic import register_system_periodic_tasks
    from delivery.models import Event
    from reports.models import AggregationState, PendingEvent
    from reports.selectors import report_aggregation_lag

    flush_redis()
    clear()
    workspace, _ = Workspace.objects.get_or_create(name="bench-reports")
    campaign = Campaign.objects.create(workspace=workspace, name="Big report", status=Campaign.Status.SENT)
    run = CampaignRun.objects.create(
        workspace=workspace, campaign=campaign, status="sent", trigger="now", due_at=timezone.now(),
        total=args.recipients,
    )  # fmt: skip
    log(f"writing {args.recipients * 5:,} events")
    events = fill(run, args.recipients)
    last_id = Event.objects.order_by("-id").values_list("id", flat=True).first()

    env = product_env(email_url="console:", REPORTS_AGGREGATE_EVERY_SECONDS=str(args.every))
    register_system_periodic_tasks()
    procs = [celery_beat(env), celery_worker("default", queues="default", concurrency=1, env=env)]
    results: dict = {"recipients": args.recipients, "events": events, "aggregate_every_seconds": args.every}
    try:
        log("catching up with the backlog (beat + one default worker)")
        started = time.monotonic()
        start_all(procs)

        def caught_up() -> bool:
            state = AggregationState.objects.filter(pk=1).first()
            return bool(state and state.last_event_id >= last_id and not PendingEvent.objects.exists())

        wait_for(caught_up, timeout=3600, what="the aggregator to catch up", every=0.5)
        catch_up = time.monotonic() - started
        results["catch_up_seconds"] = catch_up
        results["catch_up_events_per_second"] = events / catch_up
        campaign.refresh_from_db()
        results["campaign_status_after"] = campaign.status

        _, raw = api_key_create(workspace=workspace)
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        q = {"campaign_id": str(campaign.pk)}
        basic = api.get("/api/v1/reports/basic", q).json()
        results["basic"] = basic
        queries = {
            "GET reports/basic": lambda: api.get("/api/v1/reports/basic", q),
            "GET reports/link": lambda: api.get("/api/v1/reports/link", q),
            "GET reports/open-time (America/New_York)": lambda: api.get(
                "/api/v1/reports/open-time", {**q, "timezone": "America/New_York"}
            ),
            "SQL over the event table (no rollups)": lambda: naive_basic(run),
        }
        timings = {}
        for name, call in queries.items():
            call()  # warm
            timings[name] = summarize(timed(call, args.repeat if "SQL" not in name else max(3, args.repeat // 10)))
        results["query_ms"] = timings

        log(f"streaming {args.rate} events/s for {args.seconds}s")
        stop = threading.Event()
        written = [0]

        def stream():
            from django.db import connections

            per_tick = max(1, args.rate // 10)
            n = 0
            next_at = time.monotonic()
            while not stop.is_set():
                now = timezone.now()
                Event.objects.bulk_create(
                    [
                        Event(workspace_id=workspace.pk, type="opened", occurred_at=now, email=f"s{n + k}@example.org",
                              campaign_id=campaign.pk, run_id=run.pk, data={"machine": False})
                        for k in range(per_tick)
                    ]
                )  # fmt: skip
                n += per_tick
                written[0] = n
                next_at += 0.1
                time.sleep(max(0.0, next_at - time.monotonic()))
            connections.close_all()

        writer = threading.Thread(target=stream)
        writer.start()
        samples = []
        stream_started = time.monotonic()
        while time.monotonic() - stream_started < args.seconds:
            samples.append(report_aggregation_lag(now=timezone.now())["oldest_uncounted_seconds"])
            time.sleep(0.5)
        stop.set()
        writer.join()
        connection.close()
        results["stream"] = {
            "events_per_second_target": args.rate,
            "events_per_second_written": written[0] / args.seconds,
            "lag_seconds": summarize(samples),
        }
    finally:
        stop_all(procs)

    print_table(
        f"Reports: {args.recipients:,} recipients, {events:,} events",
        ["what", "value"],
        [
            ["backlog caught up in (s)", results["catch_up_seconds"]],
            ["aggregation (events/s)", results["catch_up_events_per_second"]],
            ["campaign status after", results["campaign_status_after"]],
            ["basic: sent", basic["sent"]],
            ["basic: unique_opens / machine_opens", f"{basic['unique_opens']:,} / {basic['machine_opens']:,}"],
        ],
    )  # fmt: skip
    print_table(
        "Query time (ms)",
        ["query", "n", "p50", "p99", "max"],
        [[name, t["n"], t["p50"], t["p99"], t["max"]] for name, t in results["query_ms"].items()],
    )
    lag = results["stream"]["lag_seconds"]
    print_table(
        f"Lag of the figures under a stream of {args.rate} events/s for {args.seconds} s (beat every {args.every} s)",
        ["written (events/s)", "samples", "p50 (s)", "p90 (s)", "p99 (s)", "max (s)"],
        [[results["stream"]["events_per_second_written"], lag["n"], lag["p50"], lag["p90"], lag["p99"], lag["max"]]],
    )
    save_result("reports", results)
    return results


if __name__ == "__main__":
    main()
