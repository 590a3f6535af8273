from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, QuerySet

from accounts.models import Workspace
from common import errors
from transactional.models import TransactionalEvent, TransactionalMessage


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
    else:
        events = TransactionalEvent.objects.order_by("at", "id")
        queryset = queryset.prefetch_related(Prefetch("events", queryset=events))
    try:
        message = queryset.filter(pk=message_id).first()
    except (ValueError, DjangoValidationError):  # not a UUID: no such message either
        message = None
    if message is None:
        raise errors.NotFound()
    return message


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
