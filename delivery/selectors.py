"""Reads of the delivery layer (docs/architecture.md, "Events")."""

from django.db.models import QuerySet

from accounts.models import Workspace
from delivery.models import Event


def event_list(*, workspace: Workspace) -> QuerySet[Event]:
    """The workspace's events, newest first: ids grow with time, and every index of Event ends in id, so a
    page is a backward scan of one index (docs/decisions/014). Query filters (delivery.filters) go on top."""
    return Event.objects.filter(workspace=workspace).order_by("-id")
