"""Campaign deliveries in /metrics (common.metrics): outcomes and lag from the send path, and at scrape
time the deliveries that are due but no batch has claimed (alert when it grows: workers are missing or
behind, or the dispatcher stopped)."""

import logging
from collections.abc import Iterable
from datetime import UTC

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from prometheus_client.core import GaugeMetricFamily, Metric

from common import metrics
from delivery.models import Delivery

logger = logging.getLogger(__name__)
QUEUE = "bulk"
# Statuses a mark can end a delivery in that are worth counting (`sending` is the in-flight mark).
_OUTCOMES = {
    Delivery.Status.SENT,
    Delivery.Status.FAILED,
    Delivery.Status.BOUNCED,
    Delivery.Status.SKIPPED,
    Delivery.Status.CANCELLED,
    Delivery.Status.UNCERTAIN,
}


def deliveries_marked(rows: Iterable[tuple]) -> None:
    """`rows` of (id, status, send_at, sent_at) that one guarded UPDATE of the send path changed. Called after
    the marks committed: a failure here is logged and never stops the batch."""
    try:
        _count(rows)
    except Exception:
        logger.exception("Counting %d marked deliveries for /metrics failed", len(rows))


def _count(rows) -> None:
    counts: dict[str, int] = {}
    for _id, status, send_at, sent_at in rows:
        if status == Delivery.Status.SENT and sent_at is not None:
            metrics.message_handed_off(queue=QUEUE, due_at=_aware(send_at), sent_at=_aware(sent_at))
        elif status in _OUTCOMES:
            counts[status] = counts.get(status, 0) + 1
        elif status == Delivery.Status.QUEUED:  # given back after a temporary (4xx) refusal or a dead worker
            counts["deferred"] = counts.get("deferred", 0) + 1
    for status, count in counts.items():
        metrics.message_outcome(queue=QUEUE, outcome=status, count=count)


def _aware(value):
    # SQLite's raw cursor returns text (Django's adapters are not in play on a raw UPDATE ... RETURNING).
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def due_unclaimed() -> Iterable[Metric]:
    now = timezone.now()
    due = Delivery.objects.filter(status=Delivery.Status.QUEUED, send_at__lte=now)
    oldest = due.order_by("send_at").values_list("send_at", flat=True).first()
    count = GaugeMetricFamily(
        "mailsched_due_unclaimed", "Messages due now that no worker has claimed yet.", labels=["queue"]
    )
    count.add_metric([QUEUE], due.count())
    age = GaugeMetricFamily(
        "mailsched_due_unclaimed_oldest_seconds",
        "How long the oldest unclaimed due message is overdue.",
        labels=["queue"],
    )
    age.add_metric([QUEUE], (now - oldest).total_seconds() if oldest else 0.0)
    yield count
    yield age
