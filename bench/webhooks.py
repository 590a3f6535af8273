"""A burst of events (a big campaign's `email.sent`) to one webhook endpoint: how fast they reach a local
receiver, and how many tasks the `default` queue holds meanwhile (one task per event per endpoint would be
--events tasks). Side by side in one run: no rate limit, and WEBHOOK_RATE_PER_ENDPOINT=--rate.

Each contender: --events `sent` events written in one INSERT ... SELECT (as the send path writes them in bulk),
one endpoint subscribed to `email.sent`, beat and a default worker (concurrency 2) as subprocesses. The
receiver is a threaded HTTP server in this process that answers 200. Rate = requests / (last - first
arrival); queue depth = the `default` queue's length in Redis, sampled every 0.2 s.
Run: bench/run webhooks [--events 100000] [--rate 200]
"""

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
    wait_for,
)


class Counter:
    def __init__(self):
        self.arrivals: list[float] = []
        self.ids: set[str] = set()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                counter.arrivals.append(time.time())
                counter.ids.add(self.headers.get("webhook-id", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


def queue_depth() -> int:
    import os

    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return sum(client.llen(key) for key in client.scan_iter("default*") if client.type(key) == b"list")


def one(*, events: int, rate: str) -> dict:
    from django.db import connection

    from accounts.models import Workspace
    from delivery.models import Event
    from webhooks.models import EventWatermark, WebhookEndpoint, WebhookMessage
    from webhooks.signing import new_secret

    flush_redis()
    WebhookEndpoint.objects.all().delete()
    EventWatermark.objects.all().delete()
    workspace, _ = Workspace.objects.get_or_create(name="bench-webhooks", defaults={"timezone": "UTC"})
    Event.objects.filter(workspace=workspace).delete()
    receiver = Counter()
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace, url=receiver.url, event_types=["email.sent"], secret=new_secret(),
        cursor=Event.objects.order_by("-id").values_list("id", flat=True).first() or 0,
    )
    env = product_env(email_url="smtp://127.0.0.1:9", WEBHOOK_RATE_PER_ENDPOINT=rate, WEBHOOK_ALLOW_PRIVATE_URLS="1")
    procs = [celery_beat(env), celery_worker("default", queues="default", concurrency=2, env=env)]
    start_all(procs)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Event._meta.db_table} (workspace_id, type, occurred_at, email, message_id, data) "
                "SELECT %s, 'sent', now(), 'r' || i || '@example.org', '<' || i || '@mail.example.com>', '{}' "
                "FROM generate_series(1, %s) AS i",
                [workspace.pk, events],
            )
        burst_at = time.time()
        log(f"{events:,} events written; waiting for them at the receiver (rate limit {rate or 'none'})")
        depth = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                depth.append(queue_depth())
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wait_for(lambda: len(receiver.ids) >= events, timeout=events / 20 + 120, what="every webhook", every=0.5)
        stop.set()
        sampler.join()
    finally:
        stop_all(procs)
        receiver.server.shutdown()
    arrivals = sorted(receiver.arrivals)
    span = arrivals[-1] - arrivals[0]
    return {
        "rate_limit": rate,
        "events": events,
        "requests": len(arrivals),
        "distinct_webhook_ids": len(receiver.ids),
        "first_after_burst_s": arrivals[0] - burst_at,
        "all_after_burst_s": arrivals[-1] - burst_at,
        "per_second": (len(arrivals) - 1) / span if span else None,
        "default_queue_max": max(depth) if depth else 0,
        "messages_succeeded": WebhookMessage.objects.filter(endpoint=endpoint, status="succeeded").count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", default="200", help="the limited contender's WEBHOOK_RATE_PER_ENDPOINT")
    args = parser.parse_args()
    setup_django()
    results = [one(events=args.events, rate="0"), one(events=args.events, rate=args.rate)]
    print_table(
        f"webhooks: a burst of {args.events:,} email.sent events to one endpoint",
        ["rate limit", "requests", "distinct ids", "first (s)", "all (s)", "requests/s", "default queue max"],
        [[r["rate_limit"] if r["rate_limit"] != "0" else "none", r["requests"], r["distinct_webhook_ids"],
          r["first_after_burst_s"], r["all_after_burst_s"], r["per_second"], r["default_queue_max"]]
         for r in results],
    )
    save_result("webhooks", {"results": results})


if __name__ == "__main__":
    main()
