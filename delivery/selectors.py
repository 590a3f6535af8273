"""Reads of the delivery layer (docs/architecture.md, "Events")."""

from django.db.models import QuerySet

from accounts.models import Workspace
from delivery.models import Event


def event_list(*, workspace: Workspace) -> QuerySet[Event]:
    """The workspace's events, newest first (ids grow with time). Query filters (delivery.filters) go on top;
    the listing indexes of Event end in id, so a page of a filtered list is read backwards from one of them
    (docs/decisions/017)."""
    return Event.objects.filter(workspace=workspace).order_by("-id")
