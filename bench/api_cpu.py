"""CPU per API request in one process, through the whole Django stack (Django's test client: middleware,
DRF, authentication, rate limit, the view, the database and Redis), without a server or load generator.
Counts per endpoint: Python function calls (cProfile), CPU time (`time.process_time`, so other work on a
shared machine inflates it far less than wall time; medians), wall time and SQL queries. The call counts are
robust against the machine's noise where `bench/run api`'s req/s are not; read both.

Same endpoints as bench/api.py, with its two baselines: Django's bare `/healthz` and an authenticated empty
list (`GET /api/v1/labels?page_size=1` of a workspace without labels).

Run: bench/run api-cpu [--requests 300] [--profile ENDPOINT_PREFIX] [--contacts 10000]
"""

import argparse
import cProfile
import io
import json
import pstats
import statistics
import time
from datetime import timedelta

from bench.common import (
    audience,
    campaign,
    clear_campaigns,
    flush_redis,
    log,
    print_table,
    save_result,
    setup_django,
)

TRANSACTIONAL_BODY = {
    "from": {"email": "app@mail.example.com", "name": "App"},
    "to": [{"email": "user@example.org", "name": "User"}],
    "subject": "Reset your password",
    "text": "Your code is 123456.",
    "html": "<p>Your code is <b>123456</b>.</p>",
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run api-cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests per endpoint")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--campaigns", type=int, default=500)
    parser.add_argument("--profile", default="", help="cProfile the endpoints whose names start so (comma-separated)")
    parser.add_argument("--top", type=int, default=25, help="rows of the cProfile summary")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key (cumulative, tottime, ...)")
    args = parser.parse_args(argv)
    setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Workspace
    from accounts.services import api_key_create
    from campaigns.models import Campaign

    # As bench/api.py: a rate limit that the measured requests do not reach.
    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_key"] = "100000000/min"
    from rest_framework.settings import api_settings

    api_settings.reload()

    clear_campaigns()
    flush_redis()
    workspace, label = audience(f"api{args.contacts}", args.contacts)
    first = campaign(workspace, label, name="api 0")
    Campaign.objects.bulk_create(
        [
            Campaign(
                workspace=workspace,
                name=f"api {i}",
                subject=first.subject,
                from_name=first.from_name,
                from_email=first.from_email,
                html=first.html,
                text=first.text,
                tracking=first.tracking,
                audience=first.audience,
            )
            for i in range(1, args.campaigns)
        ]
    )
    ids = [str(pk) for pk in Campaign.objects.filter(workspace=workspace).values_list("id", flat=True)]
    _, key = api_key_create(workspace=workspace, name="bench-cpu")
    empty, _ = Workspace.objects.get_or_create(name="api bench, no labels")
    _, empty_key = api_key_create(workspace=empty, name="bench-cpu")
    at = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    schedule_body = json.dumps({"schedule_type": "scheduled", "scheduled_at": at})
    counter = iter(range(10**9))

    def get(path, k):
        return lambda c: c.get(path, HTTP_AUTHORIZATION=f"Bearer {k}")

    def post(paths, body, k):
        return lambda c: c.post(
            paths[next(counter) % len(paths)], body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {k}"
        )

    endpoints = [
        ("GET /healthz (Django, baseline)", get("/healthz", key), 200),
        ("GET /labels?page_size=1, empty (API baseline)", get("/api/v1/labels?page_size=1", empty_key), 200),
        (
            "POST /campaigns/{id}/schedule",
            post([f"/api/v1/campaigns/{i}/schedule" for i in ids], schedule_body, key),
            200,
        ),
        ("GET /campaigns", get("/api/v1/campaigns", key), 200),
        (
            "POST /transactional?priority=high",
            post(["/api/v1/transactional?priority=high"], json.dumps(TRANSACTIONAL_BODY), key),
            202,
        ),
    ]
    client = Client()
    rows, results, profiles = [], {}, {}
    for name, call, expected in endpoints:
        for _ in range(args.warmup):
            response = call(client)
            if response.status_code != expected:
                raise SystemExit(f"{name} answered {response.status_code}: {response.content[:500]!r}")
        cpu, wall, queries = [], [], []

        def count(execute, sql, params, many, context, queries=queries):
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            for _ in range(args.requests):
                start, start_wall = time.process_time(), time.perf_counter()
                call(client)
                cpu.append(time.process_time() - start)
                wall.append(time.perf_counter() - start_wall)
        profiler = cProfile.Profile()
        n_profiled = max(20, args.requests // 5)
        profiler.enable()
        for _ in range(n_profiled):
            call(client)
        profiler.disable()
        stats = pstats.Stats(profiler)
        calls = stats.total_calls / n_profiled
        if args.profile and any(name.startswith(p.strip()) for p in args.profile.split(",")):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
            profiles[name] = out.getvalue()
        results[name] = {
            "cpu_ms_median": round(statistics.median(cpu) * 1000, 3),
            "cpu_ms_mean": round(statistics.fmean(cpu) * 1000, 3),
            # Wall time includes the waits for PostgreSQL and Redis (and, on a shared machine, for a core).
            "wall_ms_median": round(statistics.median(wall) * 1000, 3),
            "python_calls": round(calls),
            "queries": round(len(queries) / args.requests, 2),
        }
        log(f"{name}: {results[name]}")
    base = results[endpoints[0][0]]["cpu_ms_median"]
    for name, r in results.items():
        rows.append(
            [
                name,
                r["python_calls"],
                r["cpu_ms_median"],
                r["cpu_ms_mean"],
                r["wall_ms_median"],
                round(r["cpu_ms_median"] / base, 1),
                r["queries"],
            ]
        )
    table = print_table(
        f"API CPU per request in process (Django test client), {args.requests} requests per endpoint",
        ["endpoint", "Python calls", "CPU ms", "CPU ms (mean)", "wall ms", "CPU x /healthz", "queries"],
        rows,
    )
    for name, text in profiles.items():
        print(f"\ncProfile of {name} ({max(20, args.requests // 5)} requests), by cumulative time:\n{text}")
    save_result("api_cpu", {"requests": args.requests, "results": results, "table": table, "profiles": profiles})
    return results


if __name__ == "__main__":
    main()
