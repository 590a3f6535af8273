from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet

from accounts.models import Workspace
from common import errors
from delivery.models import Event
from transactional.models import TransactionalMessage


def transactional_message_list(*, workspace: Workspace) -> QuerySet[TransactionalMessage]:
    """The message log, newest first. Bodies and attachment contents stay in the database."""
    return (
        TransactionalMessage.objects.filter(workspace=workspace)
        .defer("html", "text")
        .order_by("-created_at", "id")
    )


def transactional_message_get(
    *, workspace: Workspace, message_id, for_update: bool = False
) -> TransactionalMessage:
    queryset = TransactionalMessage.objects.filter(workspace=workspace)
    if for_update:
        queryset = queryset.select_for_update()
    try:
        message = queryset.filter(pk=message_id).first()
    except (ValueError, DjangoValidationError):  # not a UUID: no such message either
        message = None
    if message is None:
        raise errors.NotFound()
    return message


def transactional_message_events(*, message: TransactionalMessage) -> QuerySet[Event]:
    """The message's log: its events in the one event table, oldest first."""
    return Event.objects.filter(workspace_id=message.workspace_id, message_id=str(message.pk)).order_by("id")


def transactional_batch_messages(
    *, workspace: Workspace, batch_id, for_update: bool = False
) -> list[TransactionalMessage]:
    queryset = TransactionalMessage.objects.filter(workspace=workspace, batch_id=batch_id).order_by("id")
    if for_update:
        queryset = queryset.select_for_update()
    try:
        return list(queryset)
    except (ValueError, DjangoValidationError):
        return []
