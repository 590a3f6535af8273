"""Reads of outbound webhooks, each scoped to the workspace: another workspace's endpoint is a 404."""

from uuid import UUID

from django.db.models import QuerySet

from accounts.models import Workspace
from common import errors
from webhooks.models import WebhookAttempt, WebhookEndpoint


def webhook_endpoint_list(*, workspace: Workspace) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(workspace=workspace).order_by("-created_at")


def webhook_attempt_list(*, workspace: Workspace, endpoint_id: UUID) -> QuerySet[WebhookAttempt]:
    """The endpoint's delivery log, newest first."""
    if not WebhookEndpoint.objects.filter(workspace=workspace, pk=endpoint_id).exists():
        raise errors.NotFound()
    return (
        WebhookAttempt.objects.filter(endpoint_id=endpoint_id, endpoint__workspace=workspace)
        .select_related("message")
        .order_by("-attempted_at", "-id")
    )
