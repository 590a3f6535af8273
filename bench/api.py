"""API latency and throughput under 50 concurrent clients, against gunicorn as the Procfile runs it
(config/gunicorn.py: gthread workers, one per core, 4 threads each; docs/decisions/110), driven by wrk (a C
load generator, so the load tool does not eat the cores the server needs). Endpoints:

- POST /api/v1/campaigns/{id}/schedule: a reschedule, rotating over many ready campaigns (each call
  checks readiness, which counts the audience's sendable contacts).
- GET /api/v1/campaigns: the first page (50) of a workspace's campaigns.
- POST /api/v1/transactional?priority=high: one message, accepted and enqueued (no worker sends it here).
- GET /api/v1/reports/basic?campaign_id=...: a campaign's figures (read from the report rollups, so its cost
  does not grow with the campaign; the bench's campaign has not been sent).
- POST /api/v1/engagement/events: 10,000 imported opens a request, for contacts of the audience. A bulk
  import is not a 50-client workload: this row runs with one client (IMPORT_CONNECTIONS; the same body
  from several would only queue on the same profiles' row locks) and a 60 s timeout, and reads as events a
  second too.

Two baseline rows come first, measured in the same run, so each endpoint reads as a share of the
framework's ceiling on this server: Django's bare `GET /healthz` (no database, no DRF) and an authenticated
empty list (`GET /api/v1/labels?page_size=1` of a workspace without labels: authentication, rate limit,
DRF, pagination and middleware, and no work). `--worker-class sync --web-threads 1` measures gunicorn's
sync workers instead of the Procfile's threaded ones.

The API key's rate limit is raised for the run (API_RATE_LIMIT), or wrk would mostly measure 429s.
Run: bench/run api [--duration 15] [--connections 50] [--contacts 10000]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from itertools import cycle, islice
from pathlib import Path

from bench.common import (
    Proc,
    audience,
    campaign,
    clear_campaigns,
    flush_redis,
    free_port,
    log,
    print_table,
    product_env,
    save_result,
    setup_django,
    wait_for,
)

DONE_LUA = r"""
done = function(summary, latency, requests)
  local codes = {}
  io.write("WRK_JSON " .. string.format(
    '{"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, ' ..
    '"errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %f}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


HEALTHZ = "GET /healthz (Django, baseline)"
IMPORT = "POST /engagement/events (10,000 events)"
IMPORT_EVENTS = 10_000
IMPORT_CONNECTIONS = 1


def lua_script(*, method: str, paths: list[str], body: str | None, key: str) -> str:
    quoted = ",".join(json.dumps(p) for p in paths)
    body_lua = json.dumps(body) if body is not None else "nil"
    return (
        f"""
local paths = {{{quoted}}}
local counter = 0
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["Content-Type"] = "application/json"
local body = {body_lua}
request = function()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  return wrk.format(nil, path, nil, body)
end
"""
        + DONE_LUA
    )


def run_wrk(url: str, script: str, *, duration: int, connections: int, threads: int, timeout: int = 10) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{duration}s",
                "--timeout",
                f"{timeout}s",
                "-s",
                path,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + timeout + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(path)
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    data = json.loads(line[len("WRK_JSON ") :])
    seconds = data["duration_us"] / 1e6
    errors = sum(v for k, v in data.items() if k.startswith("errors_"))
    return {
        "requests": data["requests"],
        "seconds": round(seconds, 2),
        "per_second": round(data["requests"] / seconds, 1),
        "p50_ms": round(data["p50_us"] / 1000, 1),
        "p90_ms": round(data["p90_us"] / 1000, 1),
        "p99_ms": round(data["p99_us"] / 1000, 1),
        "max_ms": round(data["max_us"] / 1000, 1),
        "errors": errors,
        "non_2xx": data["errors_status"],
        "raw": data,
    }


def import_body(workspace) -> str:
    """IMPORT_EVENTS past opens, one per contact of the bench's audience (cycling if it has fewer)."""
    from django.utils import timezone

    from audience.models import Contact

    emails = list(Contact.objects.filter(workspace=workspace).values_list("email", flat=True)[:IMPORT_EVENTS])
    start = timezone.now() - timedelta(days=30)
    events = [
        {
            "email": email,
            "type": "opened",
            "occurred_at": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_agent": "Mozilla/5.0",
        }
        for i, email in enumerate(islice(cycle(emails), IMPORT_EVENTS))
    ]
    return json.dumps({"events": events})


def check(url: str, method: str, path: str, key: str, body: str | None) -> int:
    request = urllib.request.Request(
        url + path,
        method=method,
        data=body.encode() if body else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{method} {path} answered {exc.code}: {exc.read()[:500]!r}") from None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    cores = os.cpu_count() or 2
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or cores))
    parser.add_argument("--contacts", type=int, default=10_000, help="audience size of the scheduled campaigns")
    parser.add_argument("--campaigns", type=int, default=500)
    parser.add_argument("--worker-class", default=os.environ.get("WEB_WORKER_CLASS", "gthread"), help="sync or gthread")
    parser.add_argument("--web-threads", type=int, default=int(os.environ.get("WEB_THREADS", "4")))
    parser.add_argument("--only", default="", help="comma-separated endpoint names' first words to keep")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("BENCH_PORT", "0")), help="gunicorn's port (default: a free one)"
    )
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: bench/run api installs it (apt-get install wrk)")
    setup_django()
    from accounts.services import api_key_create
    from campaigns.models import Campaign

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
    _, key = api_key_create(workspace=workspace, name="bench")
    from accounts.models import Workspace

    empty, _ = Workspace.objects.get_or_create(name="api bench, no labels")
    _, empty_key = api_key_create(workspace=empty, name="bench")
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = product_env(email_url="smtp://127.0.0.1:9", API_RATE_LIMIT="100000000/min")
    web = Proc(
        "gunicorn",
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.web_workers),
            "--worker-class",
            args.worker_class,
            "--threads",
            str(args.web_threads),
            "--log-level",
            "warning",
        ],
        env,
    )
    web.start()
    results: dict[str, dict] = {}
    from django.utils import timezone

    at = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    endpoints = [
        (HEALTHZ, "GET", ["/healthz"], None, key),
        ("GET /labels?page_size=1, empty (API baseline)", "GET", ["/api/v1/labels?page_size=1"], None, empty_key),
        (
            "POST /campaigns/{id}/schedule",
            "POST",
            [f"/api/v1/campaigns/{i}/schedule" for i in ids],
            json.dumps({"schedule_type": "scheduled", "scheduled_at": at}),
            key,
        ),
        ("GET /campaigns", "GET", ["/api/v1/campaigns"], None, key),
        (
            "POST /transactional?priority=high",
            "POST",
            ["/api/v1/transactional?priority=high"],
            json.dumps(
                {
                    "from": {"email": "app@mail.example.com", "name": "App"},
                    "to": [{"email": "user@example.org", "name": "User"}],
                    "subject": "Reset your password",
                    "text": "Your code is 123456.",
                    "html": "<p>Your code is <b>123456</b>.</p>",
                }
            ),
            key,
        ),
        ("GET /reports/basic", "GET", [f"/api/v1/reports/basic?campaign_id={ids[0]}"], None, key),
        (IMPORT, "POST", ["/api/v1/engagement/events"], import_body(workspace), key),
    ]
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        endpoints = [e for e in endpoints if any(e[0].startswith(w) for w in wanted)]
    try:
        wait_for(lambda: _up(url), timeout=60, what="gunicorn")
        for name, method, paths, body, key in endpoints:
            try:
                status = check(url, method, paths[0], key, body)
            except SystemExit as exc:
                log(f"skipping {name}: {exc}")
                results[name] = {"skipped": str(exc)}
                continue
            log(f"{name}: {args.connections} connections for {args.duration}s (first answer {status})")
            results[name] = run_wrk(
                url,
                lua_script(method=method, paths=paths, body=body, key=key),
                duration=args.duration,
                connections=IMPORT_CONNECTIONS if name == IMPORT else args.connections,
                threads=min(args.threads, IMPORT_CONNECTIONS) if name == IMPORT else args.threads,
                timeout=60 if name == IMPORT else 10,
            )
            if name == IMPORT:
                results[name]["events_per_second"] = round(results[name]["per_second"] * IMPORT_EVENTS)
            # wrk stops, but the sync workers still answer the requests queued in the listen backlog: wait
            # until the server is idle again, so the next endpoint starts from the same state.
            wait_for(lambda: _up(url, timeout=0.5), timeout=300, what="gunicorn to drain", every=0.5)
            flush_redis()
            time.sleep(1)
    finally:
        web.stop()
    ceiling = results.get(HEALTHZ, {}).get("per_second")
    rows = [
        [
            name,
            r.get("requests"),
            r.get("per_second"),
            round(r["per_second"] / ceiling, 3) if ceiling and r.get("per_second") else None,
            r.get("p50_ms"),
            r.get("p99_ms"),
            r.get("max_ms"),
            r.get("non_2xx", "skipped"),
        ]
        for name, r in results.items()
    ]
    table = print_table(
        f"API under {args.connections} concurrent clients (wrk), gunicorn {args.web_workers} {args.worker_class} "
        f"workers x {args.web_threads} threads",
        ["endpoint", "requests", "req/s", "of /healthz", "p50 ms", "p99 ms", "max ms", "non-2xx"],
        rows,
    )
    if results.get(IMPORT, {}).get("events_per_second"):
        print(f"{IMPORT}: {IMPORT_CONNECTIONS} clients, {results[IMPORT]['events_per_second']:,} events/s")
    save_result(
        "api",
        {
            "connections": args.connections,
            "duration": args.duration,
            "web_workers": args.web_workers,
            "worker_class": args.worker_class,
            "web_threads": args.web_threads,
            "contacts": args.contacts,
            "campaigns": args.campaigns,
            "results": results,
            "table": table,
        },
    )
    return results


def _up(url: str, timeout: float = 2) -> bool:
    try:
        urllib.request.urlopen(url + "/healthz", timeout=timeout).close()
        return True
    except Exception:  # noqa: BLE001 - not up yet
        return False


if __name__ == "__main__":
    main()
