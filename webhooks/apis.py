"""Outbound webhook endpoints (docs/architecture.md#webhooks): parse, call one selector or service, render."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.api import WorkspaceCrudViewSet, crud_schema
from webhooks import selectors, services
from webhooks.models import WebhookEndpoint
from webhooks.serializers import (
    WebhookAttemptOutput,
    WebhookEndpointCreatedOutput,
    WebhookEndpointInput,
    WebhookEndpointOutput,
    WebhookMessageOutput,
)

TAGS = ["Webhooks"]


@crud_schema("webhook endpoint", WebhookEndpointInput, WebhookEndpointOutput, tags=TAGS)
class WebhookEndpointViewSet(WorkspaceCrudViewSet):
    queryset = WebhookEndpoint.objects.none()  # for the schema only; requests use list_selector
    input_serializer_class = WebhookEndpointInput
    output_serializer_class = WebhookEndpointOutput
    list_selector = selectors.webhook_endpoint_list
    create_service = services.webhook_endpoint_create
    update_service = services.webhook_endpoint_update
    delete_service = services.webhook_endpoint_delete

    @extend_schema(
        summary="Create a webhook endpoint",
        description="The answer carries the signing `secret`, shown this once.",
        request=WebhookEndpointInput,
        responses={201: WebhookEndpointCreatedOutput},
        tags=TAGS,
    )
    def create(self, request, *args, **kwargs):
        endpoint = services.webhook_endpoint_create(workspace=self.workspace, **self._parse(partial=False))
        return Response(WebhookEndpointCreatedOutput(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Send a test message to the endpoint",
        description="Queues a signed `webhook.test` message; its attempt appears in the endpoint's attempts.",
        request=None,
        responses={202: WebhookMessageOutput},
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        message = services.webhook_endpoint_test(workspace=self.workspace, endpoint_id=pk)
        return Response(WebhookMessageOutput(message).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The endpoint's delivery log, newest first",
        responses=WebhookAttemptOutput(many=True),
        tags=TAGS,
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def attempts(self, request, pk=None):
        page = self.paginate_queryset(selectors.webhook_attempt_list(workspace=self.workspace, endpoint_id=pk))
        return self.get_paginated_response(WebhookAttemptOutput(page, many=True).data)

    @extend_schema(
        summary="Send an attempt's message again",
        description="Same `webhook-id` and body as before; queued at once, with a fresh retry window.",
        request=None,
        responses={202: WebhookMessageOutput},
        tags=TAGS,
    )
    @action(
        detail=True, methods=["post"], url_path=r"attempts/(?P<attempt_id>[0-9a-fA-F-]{32,36})/replay",
    )
    def replay(self, request, pk=None, attempt_id=None):
        message = services.webhook_attempt_replay(workspace=self.workspace, endpoint_id=pk, attempt_id=attempt_id)
        return Response(WebhookMessageOutput(message).data, status=status.HTTP_202_ACCEPTED)
