"""Fan-out: seconds from a campaign's launch to all its deliveries planned (one Delivery row per recipient
with its send time), and the peak memory of the worker process that did it, for each audience size, with
and without Send Time Optimization. With STO every contact has a real engagement profile (168 buckets and
exposure), so the fan-out loads and scores them all.

The launch is the product's own (campaigns.services.campaign_launch, what the dispatcher's launch task
calls); the fan-out runs in a real, freshly started bulk worker (prefork, one pool process), and "planned"
is the moment the run turns `sending` with its total written. Each measured run starts from a CHECKPOINT
(the bench connects as a superuser), so no run pays for the WAL of the one before. The run is due a minute
ahead, so no delivery falls due during the measurement and the worker does nothing but the fan-out. Peak memory is
VmHWM (peak resident set) of the pool process that ran the task, read from /proc; its resident set
before the launch is shown too, so the growth is visible.

Run: bench/run fanout [--sizes 100000,1000000] [--profile]
"""

import argparse
import signal
import subprocess
import time
from datetime import timedelta

from bench.common import (
    VENV_BIN,
    Sink,
    audience,
    campaign,
    celery_worker,
    clear_campaigns,
    flush_redis,
    log,
    memory_kb,
    print_table,
    product_env,
    save_result,
    setup_django,
    wait_for,
    wait_worker_ready,
)


def one(workspace, label, size: int, *, sto: bool, profile: str | None = None) -> dict:
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import CampaignRun
    from campaigns.services import campaign_launch, campaign_schedule, schedule_parse
    from delivery.models import Delivery

    clear_campaigns()
    flush_redis()
    c = campaign(workspace, label, name=f"fan-out {size} sto={sto}")
    at = timezone.now() + timedelta(minutes=10)
    request = schedule_parse(
        schedule_type="scheduled",
        scheduled_at=at.isoformat(),
        send_time_optimization={"window_hours": 24} if sto else None,
    )
    campaign_schedule(workspace=workspace, campaign_id=c.id, request=request)
    c.refresh_from_db()
    with Sink() as sink:
        worker = celery_worker("fanout", queues="bulk", concurrency=1, env=product_env(email_url=sink.url))
        worker.start()
        try:
            wait_worker_ready(worker)
            child = wait_for(lambda: worker.children(), timeout=30, what="pool process")[0]
            before = memory_kb(child)
            spy = None
            if profile:
                spy = subprocess.Popen(
                    [
                        str(VENV_BIN / "py-spy"),
                        "record",
                        "--pid",
                        str(child),
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        "--output",
                        profile,
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
            # Every run starts from a checkpoint: a million rows write about a gigabyte of WAL, and with
            # the default max_wal_size the checkpoint it forces would otherwise fall into the next run.
            connection.cursor().execute("CHECKPOINT")
            start = time.monotonic()
            # The launch task's call, at the instant it is due (the run is due 10 minutes ahead: nothing
            # gets sent while we measure).
            run = campaign_launch(campaign_id=c.id, due_at=c.next_run_at, now=c.next_run_at)
            assert run is not None, "launch refused"
            peak = {"VmHWM": 0}

            def planned():
                mem = memory_kb(child)
                peak["VmHWM"] = max(peak["VmHWM"], mem.get("VmHWM", 0))
                status, total = CampaignRun.objects.filter(pk=run.pk).values_list("status", "total").get()
                if status == CampaignRun.Status.FAILED:
                    raise RuntimeError(f"fan-out failed: {CampaignRun.objects.get(pk=run.pk).failure_reason}")
                return (
                    status != CampaignRun.Status.FANNING_OUT
                    and status != CampaignRun.Status.PENDING
                    and total
                )

            wait_for(planned, timeout=1800, what=f"fan-out of {size:,}", every=0.05)
            seconds = time.monotonic() - start
            after = memory_kb(child)
            if spy:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
        finally:
            worker.stop()
    rows = Delivery.objects.filter(run=run).count()
    send_times = Delivery.objects.filter(run=run).values("send_at").distinct().count()
    peak_kb = max(peak["VmHWM"], after.get("VmHWM", 0))
    return {
        "recipients": size,
        "sto": sto,
        "seconds": round(seconds, 3),
        "rows": rows,
        "rows_per_second": round(rows / seconds, 1),
        "seconds_per_100k": round(seconds * 100_000 / size, 3),
        "distinct_send_times": send_times,
        "rss_before_mb": round(before.get("VmRSS", 0) / 1024, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "growth_mb": round((peak_kb - before.get("VmRSS", 0)) / 1024, 1),
    }


def engagement_profiles(workspace) -> int:
    """An engagement profile for every contact of the workspace, written in SQL: 168 templates (a preferred
    hour with a spread over its neighbours and a weekly echo, plus exposure at a fixed send hour), one
    picked per contact by a hash of its id. Kept between runs. Returns how many profiles there are."""
    import numpy as np
    from django.db import connection, transaction

    from audience.models import Contact, EngagementProfile

    have = EngagementProfile.objects.filter(workspace=workspace).count()
    count = Contact.objects.filter(workspace=workspace).count()
    if have == count:
        return have
    log(f"making {count:,} engagement profiles (had {have:,})")
    hours = np.arange(168)
    templates = []
    for best in range(168):
        distance = np.minimum(np.abs(hours - best), 168 - np.abs(hours - best))
        values = 6 * np.exp(-(distance**2) / 4) + 2 * np.exp(-(((hours - best) % 24) ** 2) / 2) + 0.05
        exposure = np.zeros(168)
        exposure[(best // 24) * 24 + 9] = 4
        templates.append((best, values.astype(np.float32).tobytes(), exposure.astype(np.float32).tobytes()))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audience_engagementprofile WHERE workspace_id = %s", [workspace.id])
        cursor.execute("CREATE TEMPORARY TABLE _templates (k int, e bytea, x bytea) ON COMMIT DROP")
        cursor.executemany("INSERT INTO _templates VALUES (%s, %s, %s)", templates)
        cursor.execute(
            """INSERT INTO audience_engagementprofile (contact_id, workspace_id, engagement, exposure, decayed_to,
                                                       opens, clicks, machine_opens, sends, last_engaged_at,
                                                       updated_at)
               SELECT c.id, c.workspace_id, t.e, t.x, now() - interval '3 days', 20, 2, 1, 12,
                      now() - interval '3 days', now()
               FROM audience_contact c JOIN _templates t ON t.k = abs(hashtext(c.id::text)) %% 168
               WHERE c.workspace_id = %s""",
            [workspace.id],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audience_engagementprofile")
    return count


def warm_up(workspace, label) -> None:
    """Read the audience once, untimed, so the first measured fan-out does not pay for a cold cache and
    the ones after it do not look faster for that reason alone."""
    from campaigns.selectors import campaign_recipients

    c = campaign(workspace, label, name="warm-up")
    list(campaign_recipients(workspace=workspace, campaign=c).order_by().values_list("id", "email", "timezone")
         .iterator(chunk_size=20_000))
    c.delete()


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="bench/run fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="100000,1000000",
        help="comma-separated audience sizes (default 100000,1000000; making 1M contacts the "
        "first time takes a minute)",
    )
    parser.add_argument("--profile", action="store_true", help="also record the largest fan-out under py-spy")
    args = parser.parse_args(argv)
    setup_django()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = []
    for size in sizes:
        workspace, label = audience(f"fan{size}", size)
        engagement_profiles(workspace)
        warm_up(workspace, label)
        for sto in (False, True):
            log(f"fan-out of {size:,} recipients, STO {'on' if sto else 'off'}")
            results.append(one(workspace, label, size, sto=sto))
    profile = None
    if args.profile:
        from bench.common import RESULTS
        from bench.profiles import summarize_raw

        size = max(sizes)
        workspace, label = audience(f"fan{size}", size)
        out = str(RESULTS / "fanout-profile.txt")
        log(f"profiling the fan-out of {size:,} under py-spy (not counted in the table)")
        one(workspace, label, size, sto=False, profile=out)
        profile = summarize_raw(out, top=25)
        print(profile["text"])
    rows = [
        [
            r["recipients"],
            "on" if r["sto"] else "off",
            r["seconds"],
            r["rows_per_second"],
            r["seconds_per_100k"],
            r["rss_before_mb"],
            r["peak_rss_mb"],
        ]
        for r in results
    ]
    table = print_table(
        "Fan-out: launch to all deliveries planned (PostgreSQL, one bulk worker process)",
        [
            "recipients",
            "STO",
            "seconds",
            "rows/s",
            "s per 100k",
            "worker RSS before MB",
            "worker peak RSS MB",
        ],
        rows,
    )
    targets = {}
    million = [r for r in results if r["recipients"] >= 1_000_000]
    if million:
        targets["1,000,000 planned in under 30 s"] = {
            "worst": max(r["seconds"] for r in million),
            "met": all(r["seconds"] < 30 for r in million),
        }
    targets["worker peak memory under 150 MB"] = {
        "worst": max(r["peak_rss_mb"] for r in results),
        "met": all(r["peak_rss_mb"] < 150 for r in results),
    }
    if len(sizes) > 1:
        per = [r["seconds_per_100k"] for r in results if not r["sto"]]
        targets["cost grows linearly (s per 100k within 1.5x across sizes)"] = {
            "s_per_100k": per,
            "met": max(per) <= 1.5 * min(per),
        }
    for k, v in targets.items():
        print(
            f"target {k}: {'MET' if v['met'] else 'MISSED'} ({ {x: y for x, y in v.items() if x != 'met'} })"
        )
    save_result("fanout", {"results": results, "targets": targets, "table": table, "profile": profile})
    return results


if __name__ == "__main__":
    main()
