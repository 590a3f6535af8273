"""Transactional endpoints (docs/architecture.md#transactional): parse, call one service or selector, render."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import WorkspaceApiMixin
from common import errors
from common.schema import error_response
from transactional import selectors, services
from transactional.filters import TransactionalMessageFilter
from transactional.models import TransactionalMessage
from transactional.serializers import (
    AcceptedOutput,
    BatchCancelOutput,
    MessageDetailOutput,
    MessageOutput,
    PriorityQuery,
    TransactionalInput,
    flatten_errors,
)

TAGS = ["Transactional"]
NOT_CANCELLABLE = error_response("409 MESSAGE_NOT_CANCELLABLE: no longer scheduled; nothing was cancelled.")


class TransactionalSendApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Send or schedule a transactional message",
        description=(
            "One message per `to` address, sharing a `batch_id`; cc, bcc, reply_to, headers and attachments "
            "go with each. Without `scheduled_at` it is sent at once; with it (an offset or Z is required) "
            "it waits until then, at most 72 hours ahead. A sandbox key gets 200 and nothing is sent."
        ),
        tags=TAGS,
        parameters=[
            OpenApiParameter(
                "priority",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=True,
                enum=["high", "low"],
                description="high: its own queue and workers (password resets); low: everything else.",
            )
        ],
        request=TransactionalInput,
        responses={
            202: AcceptedOutput,
            200: OpenApiResponse(AcceptedOutput, description="Sandbox key: accepted and logged, not sent."),
            403: error_response(
                "CONTENT_REJECTED: attachments over the size limit (the limit is in the message)."
            ),
        },
    )
    def post(self, request):
        query = PriorityQuery(data=request.query_params)
        body = TransactionalInput(data=request.data)
        problems: dict[str, list[str]] = {}
        # Both are checked before answering, so a client fixing one does not then meet the other.
        if not query.is_valid():
            problems.update(flatten_errors(query.errors))
        if not body.is_valid():
            problems.update(flatten_errors(body.errors))
        if problems:
            raise errors.ValidationError(details=problems)
        accepted = services.transactional_send(
            workspace=request.workspace,
            priority=query.validated_data["priority"],
            sandbox=bool(request.auth.sandbox),
            **body.validated_data,
        )
        code = status.HTTP_200_OK if accepted.sandbox else status.HTTP_202_ACCEPTED
        data = {
            "status": code,
            "message": "Accepted",
            "success": True,
            "message_id": accepted.message_ids[0],
            "batch_id": accepted.batch_id,
            "message_ids": accepted.message_ids,
            "sandbox": accepted.sandbox,
        }
        return Response(AcceptedOutput(data).data, status=code)


class MessageListApi(WorkspaceApiMixin, generics.GenericAPIView):
    queryset = TransactionalMessage.objects.none()  # for the schema only
    serializer_class = MessageOutput
    filterset_class = TransactionalMessageFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.transactional_message_list(workspace=self.workspace)

    @extend_schema(summary="The message log", tags=TAGS, responses=MessageOutput(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(MessageOutput(page, many=True).data)


class MessageDetailApi(WorkspaceApiMixin, APIView):
    @extend_schema(summary="One message, with its events", tags=TAGS, responses=MessageDetailOutput)
    def get(self, request, message_id):
        message = selectors.transactional_message_get(workspace=request.workspace, message_id=message_id)
        return Response(MessageDetailOutput(message).data)


class MessageCancelApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Cancel a scheduled message",
        tags=TAGS,
        request=None,
        responses={200: MessageOutput, 409: NOT_CANCELLABLE},
    )
    def post(self, request, message_id):
        message = services.transactional_message_cancel(workspace=request.workspace, message_id=message_id)
        return Response(MessageOutput(message).data)


class BatchCancelApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Cancel every message of a scheduled batch (all or nothing)",
        tags=TAGS,
        request=None,
        responses={200: BatchCancelOutput, 409: NOT_CANCELLABLE},
    )
    def post(self, request, batch_id):
        messages = services.transactional_batch_cancel(workspace=request.workspace, batch_id=batch_id)
        return Response(BatchCancelOutput({"batch_id": batch_id, "messages": messages}).data)
