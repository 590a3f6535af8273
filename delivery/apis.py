"""The event list (docs/architecture.md, "Events"): parse the filters, call the selector, render."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response

from accounts.api import WorkspaceApiMixin, WorkspaceCrudViewSet, crud_schema
from delivery import selectors, services
from delivery.filters import EventFilter
from delivery.models import Event, Throttle
from delivery.serializers import (
    EngagementEventsInput,
    EngagementImportOutput,
    StreamEventOutput,
    ThrottleInput,
    ThrottleOutput,
)


class EventListApi(WorkspaceApiMixin, generics.GenericAPIView):
    queryset = Event.objects.none()  # for the schema only
    serializer_class = StreamEventOutput
    filterset_class = EventFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.event_list(workspace=self.workspace)

    @extend_schema(
        summary="List events, newest first",
        description=(
            "What happened to this workspace's campaign messages, transactional messages and campaigns. "
            "Filters combine with AND; `type` may be repeated (OR among the types). `since` is inclusive, "
            "`until` exclusive; both need an offset or Z."
        ),
        tags=["Events"],
        responses=StreamEventOutput(many=True),
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(StreamEventOutput(page, many=True).data)


@crud_schema("throttle", ThrottleInput, ThrottleOutput, tags=["Throttles"])
class ThrottleViewSet(WorkspaceCrudViewSet):
    """Send-rate limits as data: per workspace, per recipient domain, per sending domain (with a warm-up
    ramp). A change reaches sends already under way with their next batch, within seconds."""

    queryset = Throttle.objects.none()  # for the schema only
    input_serializer_class = ThrottleInput
    output_serializer_class = ThrottleOutput
    list_selector = selectors.throttle_list
    create_service = services.throttle_create
    update_service = services.throttle_update
    delete_service = services.throttle_delete


class EngagementEventsImportApi(WorkspaceApiMixin, generics.GenericAPIView):
    serializer_class = EngagementEventsInput

    @extend_schema(
        summary="Import open and click history from a previous ESP",
        description=(
            "Up to 10,000 events a request. Each counts exactly like a tracked one for Send Time Optimization. "
            "A row that is malformed, in the future, or names no contact of this workspace is skipped with "
            "its index and reason; the others are imported."
        ),
        tags=["Events"],
        request=EngagementEventsInput,
        responses=EngagementImportOutput,
    )
    def post(self, request):
        body = EngagementEventsInput(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.engagement_import(workspace_id=self.workspace.id, rows=body.validated_data["events"])
        return Response(EngagementImportOutput(result).data)
