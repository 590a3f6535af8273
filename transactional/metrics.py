"""Transactional messages in /metrics (common.metrics): at scrape time, those due that no worker claimed."""

from collections.abc import Iterable

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from transactional.models import TransactionalMessage as M


def due_unclaimed() -> Iterable[Metric]:
    now = timezone.now()
    rows = (
        M.objects.filter(status__in=[M.Status.SCHEDULED, M.Status.QUEUED], send_at__lte=now)
        .values("priority")
        .annotate(count=Count("id"), oldest=Min("send_at"))
    )
    count = GaugeMetricFamily(
        "mailsched_due_unclaimed", "Messages due now that no worker has claimed yet.", labels=["queue"]
    )
    age = GaugeMetricFamily(
        "mailsched_due_unclaimed_oldest_seconds",
        "How long the oldest unclaimed due message is overdue.",
        labels=["queue"],
    )
    found = {row["priority"]: row for row in rows}
    for priority, queue in M.QUEUE_OF_PRIORITY.items():
        row = found.get(priority)
        count.add_metric([queue], row["count"] if row else 0)
        age.add_metric([queue], (now - row["oldest"]).total_seconds() if row else 0.0)
    yield count
    yield age
