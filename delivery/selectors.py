"""Reads of the delivery layer (docs/architecture.md, "Events")."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import Workspace
from delivery import tracking
from delivery.models import Delivery, Event, Throttle


def throttle_list(*, workspace: Workspace) -> QuerySet[Throttle]:
    return Throttle.objects.filter(workspace=workspace)


def event_list(*, workspace: Workspace) -> QuerySet[Event]:
    """The workspace's events, newest first (ids grow with time). Query filters (delivery.filters) go on top;
    the listing indexes of Event end in id, so a page of a filtered list is read backwards from one of them
    (docs/decisions/017)."""
    return Event.objects.filter(workspace=workspace).order_by("-id")


def tracking_message_sent_at(*, target: tracking.Target) -> datetime | None:
    """When the message a tracking token names was handed to the mail server: a campaign delivery's
    `sent_at`, a transactional message's first `sent` event (the transactional table sits above this app;
    events are never deleted). None when no such record is left. One indexed query."""
    if isinstance(target, tracking.MessageRef):
        return (
            Event.objects.filter(
                workspace_id=UUID(target.workspace_id), message_id=target.message_id, type=Event.Type.SENT
            )
            .order_by("id")
            .values_list("occurred_at", flat=True)
            .first()
        )
    return Delivery.objects.filter(pk=target).values_list("sent_at", flat=True).first()


@dataclass(frozen=True)
class ComplaintRate:
    """A workspace's spam complaints over its messages sent in the last `window_days`, and what that
    means: `ok`, `warn` (above COMPLAINT_RATE_WARN), `hold` (above COMPLAINT_RATE_HOLD: no new campaign
    sends) or `too_few_sent` (below COMPLAINT_RATE_MIN_SENT the rate says little and is not judged)."""

    sent: int
    complaints: int
    window_days: int
    level: str

    @property
    def rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    def message(self) -> str:
        figure = f"{self.complaints} complaint(s) over {self.sent} message(s) sent in {self.window_days} days"
        if self.level == "hold":
            return (
                f"The complaint rate is {self.rate:.2%} ({figure}), above the {settings.COMPLAINT_RATE_HOLD:.1%} at "
                "which Gmail starts rejecting bulk mail: campaign sends are held until it falls below."
            )
        if self.level == "warn":
            return (
                f"The complaint rate is {self.rate:.2%} ({figure}), above Gmail's {settings.COMPLAINT_RATE_WARN:.1%} "
                "guideline: check the audience's consent and make unsubscribing easy."
            )
        return f"The complaint rate is {self.rate:.2%} ({figure})."


def workspace_complaint_rate(*, workspace: Workspace, now: datetime | None = None) -> ComplaintRate:
    """From the event table: `complained` events (the ESPs' feedback-loop reports, through the webhooks)
    over `sent` events, campaign and transactional, in the last COMPLAINT_RATE_WINDOW_DAYS. One query over
    the workspace's recent events; cached for a minute, since readiness asks for it on every campaign page."""
    cache_key = f"complaint-rate:{workspace.pk}"
    if now is None and (cached := cache.get(cache_key)) is not None:
        return cached
    days = settings.COMPLAINT_RATE_WINDOW_DAYS
    since = (now or timezone.now()) - timedelta(days=days)
    counts = Event.objects.filter(
        workspace=workspace, type__in=[Event.Type.SENT, Event.Type.COMPLAINED], occurred_at__gte=since
    ).aggregate(
        sent=Count("id", filter=Q(type=Event.Type.SENT)), complaints=Count("id", filter=Q(type=Event.Type.COMPLAINED))
    )
    sent, complaints = counts["sent"], counts["complaints"]
    rate = complaints / sent if sent else 0.0
    if sent < settings.COMPLAINT_RATE_MIN_SENT:
        level = "too_few_sent"
    elif rate > settings.COMPLAINT_RATE_HOLD:
        level = "hold"
    elif rate > settings.COMPLAINT_RATE_WARN:
        level = "warn"
    else:
        level = "ok"
    result = ComplaintRate(sent=sent, complaints=complaints, window_days=days, level=level)
    if now is None:
        cache.set(cache_key, result, 60)
    return result
