"""Campaign and template endpoints (docs/architecture.md#campaigns): parse, call one service or selector, render."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.api import WorkspaceApiMixin, WorkspaceCrudViewSet, crud_schema
from campaigns import selectors, services
from campaigns.filters import CampaignFilter
from campaigns.models import Campaign, Template
from campaigns.serializers import (
    CampaignCreateInput,
    CampaignInput,
    CampaignOutput,
    CampaignRunOutput,
    CountOutput,
    PreviewOutput,
    ReadinessOutput,
    ScheduleInput,
    SendPlanOutput,
    SendPlanQuery,
    TemplateInput,
    TemplateOutput,
)
from common.schema import error_response


@crud_schema("template", TemplateInput, TemplateOutput, tags=["Templates"])
class TemplateViewSet(WorkspaceCrudViewSet):
    """Reusable subject, html and text, personalised with Jinja2 (`{{ first_name }}`) in a sandbox."""

    queryset = Template.objects.none()  # for the schema only; requests use list_selector
    input_serializer_class = TemplateInput
    output_serializer_class = TemplateOutput
    list_selector = selectors.template_list
    create_service = services.template_create
    update_service = services.template_update
    delete_service = services.template_delete


CONFLICT = error_response("409: the campaign's status does not allow this (see the code).")
NOT_READY = error_response("422 CAMPAIGN_NOT_READY: details = {can_send: false, missing: [...]}.")
TAGS = ["Campaigns"]


class CampaignViewSet(WorkspaceApiMixin, viewsets.GenericViewSet):
    queryset = Campaign.objects.none()  # for the schema only
    serializer_class = CampaignOutput
    filterset_class = CampaignFilter
    lookup_value_converter = "uuid"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.campaign_list(workspace=self.workspace)

    def _parse(self, serializer_class, **kwargs):
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context(), **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer

    @property
    def sandbox(self) -> bool:
        """A sandbox key's sends run the whole pipeline and reach no mail server (docs/decisions/061)."""
        return bool(getattr(self.request.auth, "sandbox", False))

    def _render(self, campaign, status_code=status.HTTP_200_OK) -> Response:
        # Re-read through the selector so labels and template are current after the service ran.
        campaign = selectors.campaign_get(workspace=self.workspace, campaign_id=campaign.pk)
        return Response(CampaignOutput(campaign).data, status=status_code)

    @extend_schema(summary="List campaigns", tags=TAGS, responses=CampaignOutput(many=True))
    def list(self, request):
        queryset = self.filter_queryset(selectors.campaign_list_page(workspace=self.workspace))
        page = self.paginate_queryset(queryset)
        context = {
            "summaries": selectors.campaign_summaries(workspace=self.workspace, campaigns=page),
            "label_ids": selectors.campaign_label_ids(campaigns=page),
        }
        return self.get_paginated_response(CampaignOutput(page, many=True, context=context).data)

    @extend_schema(
        summary="Create a campaign (scheduled at once when it has a schedule and is ready)",
        tags=TAGS,
        request=CampaignCreateInput,
        responses={201: CampaignOutput},
    )
    def create(self, request):
        serializer = self._parse(CampaignCreateInput)
        schedule_kwargs = serializer.pop_schedule_kwargs()
        schedule = services.schedule_parse(**schedule_kwargs) if schedule_kwargs else None
        campaign = services.campaign_create(
            workspace=self.workspace, fields=serializer.validated_data, schedule=schedule, sandbox=self.sandbox
        )
        return self._render(campaign, status.HTTP_201_CREATED)

    @extend_schema(summary="Get a campaign", tags=TAGS, responses=CampaignOutput)
    def retrieve(self, request, pk=None):
        return self._render(selectors.campaign_get(workspace=self.workspace, campaign_id=pk))

    @extend_schema(
        summary="Edit a campaign (draft, scheduled or failed)",
        tags=TAGS,
        request=CampaignInput,
        responses={200: CampaignOutput, 409: CONFLICT, 422: NOT_READY},
    )
    def partial_update(self, request, pk=None):
        serializer = self._parse(CampaignInput, partial=True)
        campaign = services.campaign_update(workspace=self.workspace, campaign_id=pk, fields=serializer.validated_data)
        return self._render(campaign)

    @extend_schema(summary="Delete a draft campaign", tags=TAGS, responses={204: None, 409: CONFLICT})
    def destroy(self, request, pk=None):
        services.campaign_delete(workspace=self.workspace, campaign_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Send now", tags=TAGS, request=None, responses={200: CampaignOutput, 409: CONFLICT, 422: NOT_READY}
    )
    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        return self._render(services.campaign_send_now(workspace=self.workspace, campaign_id=pk, sandbox=self.sandbox))

    @extend_schema(
        summary="Create a campaign and send it now",
        tags=TAGS,
        request=CampaignInput,
        responses={201: CampaignOutput, 422: NOT_READY},
    )
    @action(detail=False, methods=["post"], url_path="create-send")
    def create_send(self, request):
        serializer = self._parse(CampaignInput)
        campaign = services.campaign_create_send(
            workspace=self.workspace, fields=serializer.validated_data, sandbox=self.sandbox
        )
        return self._render(campaign, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Schedule, reschedule, or clear the schedule (immediate)",
        tags=TAGS,
        request=ScheduleInput,
        responses={200: CampaignOutput, 409: CONFLICT, 422: NOT_READY},
    )
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        serializer = self._parse(ScheduleInput)
        schedule = services.schedule_parse(**serializer.to_schedule_kwargs())
        return self._render(
            services.campaign_schedule(workspace=self.workspace, campaign_id=pk, request=schedule, sandbox=self.sandbox)
        )

    @extend_schema(
        summary="Cancel a scheduled send (back to draft)",
        tags=TAGS,
        request=None,
        responses={200: CampaignOutput, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="cancel-schedule")
    def cancel_schedule(self, request, pk=None):
        return self._render(services.campaign_cancel_schedule(workspace=self.workspace, campaign_id=pk))

    @extend_schema(
        summary="Pause a sending campaign", tags=TAGS, request=None, responses={200: CampaignOutput, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._render(services.campaign_pause(workspace=self.workspace, campaign_id=pk))

    @extend_schema(
        summary="Resume a paused campaign", tags=TAGS, request=None, responses={200: CampaignOutput, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._render(services.campaign_resume(workspace=self.workspace, campaign_id=pk))

    @extend_schema(
        summary="Stop: cancel the remaining recipients",
        tags=TAGS,
        request=None,
        responses={200: CampaignOutput, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return self._render(services.campaign_stop(workspace=self.workspace, campaign_id=pk))

    @extend_schema(summary="Duplicate as a new draft", tags=TAGS, request=None, responses={201: CampaignOutput})
    @action(detail=True, methods=["post"])
    def duplicate(self, request, pk=None):
        return self._render(
            services.campaign_duplicate(workspace=self.workspace, campaign_id=pk), status.HTTP_201_CREATED
        )

    @extend_schema(summary="Count sendable recipients now", tags=TAGS, request=None, responses=CountOutput)
    @action(detail=True, methods=["post"], url_path="count-recipient")
    def count_recipient(self, request, pk=None):
        campaign = selectors.campaign_get(workspace=self.workspace, campaign_id=pk)
        return Response({"count": selectors.campaign_recipient_count(workspace=self.workspace, campaign=campaign)})

    @extend_schema(
        summary="Render for one contact (or sample data)",
        tags=TAGS,
        parameters=[OpenApiParameter("contact_id", str, required=False, description="A contact of this workspace.")],
        responses=PreviewOutput,
    )
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        campaign = selectors.campaign_get(workspace=self.workspace, campaign_id=pk)
        contact_id = request.query_params.get("contact_id") or None
        data = selectors.campaign_preview(workspace=self.workspace, campaign=campaign, contact_id=contact_id)
        return Response(PreviewOutput(data).data)

    @extend_schema(summary="Readiness report", tags=TAGS, responses=ReadinessOutput)
    @action(detail=True, methods=["get"])
    def readiness(self, request, pk=None):
        campaign = selectors.campaign_get(workspace=self.workspace, campaign_id=pk)
        return Response(selectors.campaign_readiness(workspace=self.workspace, campaign=campaign))

    @extend_schema(
        summary="Planned send times: per hour, and a sample of recipients with the reason for each",
        tags=TAGS,
        parameters=[SendPlanQuery],
        responses=SendPlanOutput,
    )
    @action(detail=True, methods=["get"], url_path="send-plan")
    def send_plan(self, request, pk=None):
        query = SendPlanQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        campaign = selectors.campaign_get(workspace=self.workspace, campaign_id=pk)
        plan = selectors.campaign_send_plan(
            workspace=self.workspace, campaign=campaign, email=query.validated_data.get("email", "")
        )
        return Response(SendPlanOutput(plan).data)

    @extend_schema(summary="Runs of the campaign", tags=TAGS, responses=CampaignRunOutput(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])  # the campaign list's filters do not apply to runs
    def runs(self, request, pk=None):
        page = self.paginate_queryset(selectors.campaign_runs(workspace=self.workspace, campaign_id=pk))
        return self.get_paginated_response(CampaignRunOutput(page, many=True).data)
