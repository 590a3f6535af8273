"""Report endpoints under /api/v1/reports/ (docs/architecture.md#reports): parse, call one selector or
service, render."""

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import WorkspaceApiMixin
from common import errors
from common.schema import error_response
from reports import selectors, services
from reports.models import ReportExport
from reports.serializers import (
    CategoryQuery,
    LabelQuery,
    OpenTimeQuery,
    ReportBasicOutput,
    ReportCategoryOutput,
    ReportExportInput,
    ReportExportOutput,
    ReportLabelOutput,
    ReportLinkOutput,
    ReportOpenTimeOutput,
    ReportQuery,
)

TAGS = ["Reports"]
NO_CAMPAIGN = error_response("RESOURCE_NOT_FOUND: no such campaign in this workspace, or no such run of it.")
CURRENT = " Figures are counted from the event stream every few seconds and keep changing as events arrive."


def _query(serializer_class, request) -> dict:
    query = serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query.validated_data


class ReportBasicApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="A campaign's figures",
        description="Over all runs, or one with run_id." + CURRENT,
        tags=TAGS,
        parameters=[ReportQuery],
        responses={200: ReportBasicOutput, 404: NO_CAMPAIGN},
    )
    def get(self, request):
        q = _query(ReportQuery, request)
        return Response(ReportBasicOutput(selectors.report_basic(workspace=self.workspace, **q)).data)


class ReportLinkApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Clicks per link, most clicked first",
        description=CURRENT.strip(),
        tags=TAGS,
        parameters=[ReportQuery],
        responses={200: ReportLinkOutput, 404: NO_CAMPAIGN},
    )
    def get(self, request):
        q = _query(ReportQuery, request)
        return Response(ReportLinkOutput(selectors.report_links(workspace=self.workspace, **q)).data)


class ReportOpenTimeApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Human opens by local hour and weekday",
        description=CURRENT.strip(),
        tags=TAGS,
        parameters=[OpenTimeQuery],
        responses={200: ReportOpenTimeOutput, 404: NO_CAMPAIGN},
    )
    def get(self, request):
        q = _query(OpenTimeQuery, request)
        zone = q.pop("timezone")
        return Response(ReportOpenTimeOutput(selectors.report_open_time(workspace=self.workspace, zone=zone, **q)).data)


class ReportLabelApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Figures summed over the campaigns with a label",
        tags=TAGS,
        parameters=[LabelQuery],
        responses={200: ReportLabelOutput, 404: error_response("RESOURCE_NOT_FOUND: no such label.")},
    )
    def get(self, request):
        q = _query(LabelQuery, request)
        return Response(ReportLabelOutput(selectors.report_label(workspace=self.workspace, label_id=q["label"])).data)


class ReportCategoryApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Figures summed over the campaigns of a category",
        tags=TAGS,
        parameters=[CategoryQuery],
        responses=ReportCategoryOutput,
    )
    def get(self, request):
        q = _query(CategoryQuery, request)
        return Response(ReportCategoryOutput(selectors.report_category(workspace=self.workspace, **q)).data)


class ReportExportApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Start a CSV export of per-recipient results",
        description="One row per recipient (per run): status, sent time, first open, first click, opens, clicks, "
        "bounce reason. Built asynchronously; poll GET export/{id} for its download_url.",
        tags=TAGS,
        request=ReportExportInput,
        responses={202: ReportExportOutput, 404: NO_CAMPAIGN},
    )
    def post(self, request):
        body = ReportExportInput(data=request.data)
        body.is_valid(raise_exception=True)
        export = services.report_export_start(workspace=self.workspace, **body.validated_data)
        return Response(ReportExportOutput(export, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class ReportExportDetailApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="An export's status and, when done, its download_url", tags=TAGS, responses=ReportExportOutput
    )
    def get(self, request, export_id):
        export = selectors.report_export_get(workspace=self.workspace, export_id=export_id)
        return Response(ReportExportOutput(export, context={"request": request}).data)


class ReportExportDownloadApi(WorkspaceApiMixin, APIView):
    @extend_schema(
        summary="Download a finished export (only with a key of its workspace)",
        tags=TAGS,
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The CSV.")},
    )
    def get(self, request, export_id):
        export = selectors.report_export_get(workspace=self.workspace, export_id=export_id)
        if export.status != ReportExport.Status.DONE:
            raise errors.NotFound("This export has no file yet.")
        return FileResponse(
            default_storage.open(export.file, "rb"),
            as_attachment=True,
            filename=f"campaign-{export.campaign_id}-report.csv",
            content_type="text/csv; charset=utf-8",
        )
