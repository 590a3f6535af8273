"""Reads of the delivery layer (docs/architecture.md, "Events")."""

from datetime import datetime
from uuid import UUID

from django.db.models import QuerySet

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
