"""Prometheus metrics (`/metrics`, docs/operations.md#metrics).

Counters and histograms are incremented where things happen, in whichever process that is: the workers
mostly. With PROMETHEUS_MULTIPROC_DIR set (scripts/run and the Procfile set it) prometheus-client keeps each
process's values in a file of that directory and the scrape adds them up, so one `GET /metrics` on any web
process answers for every gunicorn and Celery prefork process of the machine. Gauges that describe the
database (due but unclaimed work) or the broker (queue depths) are read at scrape time instead: the layers
that own those tables register a collector here (`register_scrape_collector`), so this module never
imports them."""

import logging
import os
from collections.abc import Callable, Iterable
from datetime import datetime

import redis
from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

# Outcomes: sent (handed to the mail server), deferred (4xx, retried later), bounced, failed, skipped,
# cancelled. Queue: bulk for campaign mail, tx_high / tx_low for transactional mail.
MESSAGES = Counter("mailsched_messages", "Messages by queue and outcome.", ["queue", "outcome"])
SCHEDULE_LAG = Histogram(
    "mailsched_schedule_lag_seconds",
    "From a message's due time (its send_at) to its hand-off to the mail server.",
    ["queue"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
IN_PROCESS = (MESSAGES, SCHEDULE_LAG)

_scrape_collectors: list[Callable[[], Iterable[Metric]]] = []


def register_scrape_collector(collect: Callable[[], Iterable[Metric]]) -> None:
    """`collect()` yields metric families computed at scrape time (once per app, from AppConfig.ready)."""
    if collect not in _scrape_collectors:
        _scrape_collectors.append(collect)


def message_outcome(*, queue: str, outcome: str, count: int = 1) -> None:
    if count:
        MESSAGES.labels(queue=queue, outcome=outcome).inc(count)


def message_handed_off(*, queue: str, due_at: datetime | None, sent_at: datetime) -> None:
    MESSAGES.labels(queue=queue, outcome="sent").inc()
    if due_at is not None:
        SCHEDULE_LAG.labels(queue=queue).observe(max(0.0, (sent_at - due_at).total_seconds()))


class _ScrapeTime:
    def collect(self) -> Iterable[Metric]:
        # Families of one name from several apps (due work of campaigns and of transactional mail) are one
        # family in the exposition format: their samples are merged under the first.
        families: dict[str, Metric] = {}
        for collect in _scrape_collectors:
            try:
                for family in collect():
                    if family.name in families:
                        families[family.name].samples.extend(family.samples)
                    else:
                        families[family.name] = family
            except Exception:  # a scrape still answers what it can; the failure is in the log
                logger.exception("metrics collector %s failed", getattr(collect, "__name__", collect))
        yield from families.values()


def queue_depths() -> Iterable[Metric]:
    """Tasks waiting in each Celery queue (kombu's Redis transport keeps a list per priority step)."""
    family = GaugeMetricFamily("mailsched_queue_depth", "Tasks waiting in each broker queue.", labels=["queue"])
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
        suffixes = ("", "\x06\x163", "\x06\x166", "\x06\x169")
        with client.pipeline() as pipe:
            for queue in settings.CELERY_TASK_QUEUES_NAMES:
                for suffix in suffixes:
                    pipe.llen(queue + suffix)
            lengths = pipe.execute()
        for i, queue in enumerate(settings.CELERY_TASK_QUEUES_NAMES):
            family.add_metric([queue], sum(lengths[i * len(suffixes) : (i + 1) * len(suffixes)]))
    yield family


register_scrape_collector(queue_depths)


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        multiprocess.MultiProcessCollector(registry, path=path)
    else:  # one process (tests, `manage.py runserver`): its own values
        for metric in IN_PROCESS:
            registry.register(metric)
    registry.register(_ScrapeTime())
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """Tell prometheus-client a process of the multiprocess directory is gone (gunicorn's child_exit,
    Celery's worker_process_shutdown); its counters stay in the sum."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
