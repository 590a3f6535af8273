"""Audience endpoints (docs/architecture.md#tenancy): parse, call one selector or service, render."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.api import WorkspaceApiMixin, WorkspaceCrudViewSet, crud_schema
from audience import selectors, services
from audience.filters import ContactFilter, LabelFilter, SegmentFilter, SuppressionFilter
from audience.models import Contact, ContactImport, Label, Segment, Suppression
from audience.serializers import (
    ContactEngagementOutput,
    ContactImportInput,
    ContactImportOutput,
    ContactInput,
    ContactOutput,
    CountOutput,
    LabelInput,
    LabelOutput,
    SegmentInput,
    SegmentOutput,
    SuppressionInput,
    SuppressionOutput,
)


@crud_schema("contact", ContactInput, ContactOutput, tags=["contacts"])
class ContactViewSet(WorkspaceCrudViewSet):
    queryset = Contact.objects.none()  # for the schema only; requests use list_selector
    input_serializer_class = ContactInput
    output_serializer_class = ContactOutput
    filterset_class = ContactFilter
    list_selector = selectors.contact_list
    create_service = services.contact_create
    update_service = services.contact_update
    delete_service = services.contact_delete

    @extend_schema(
        summary="Import contacts from a CSV file",
        description=(
            "Upload a CSV (multipart field `file`). The import runs in the background: the answer is 202 "
            "with the import, whose status and per-line errors are at GET /contacts/imports/{id}. "
            "Existing contacts (same email) are updated, never duplicated; blank cells keep stored values."
        ),
        request={"multipart/form-data": ContactImportInput},
        responses={202: ContactImportOutput},
        tags=["contacts"],
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser])
    def import_csv(self, request):
        serializer = ContactImportInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        contact_import = services.contact_import_start(
            workspace=self.workspace, filename=upload.name or "", fileobj=upload
        )
        return Response(ContactImportOutput(contact_import).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="A contact's engagement profile (what Send Time Optimization learns from)",
        responses=ContactEngagementOutput,
        tags=["contacts"],
    )
    @action(detail=True, methods=["get"])
    def engagement(self, request, pk=None):
        profile = selectors.contact_engagement(workspace=self.workspace, contact_id=pk, now=timezone.now())
        return Response(ContactEngagementOutput(profile).data)


@extend_schema(tags=["contacts"])
class ContactImportViewSet(WorkspaceApiMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = ContactImport.objects.none()  # for the schema only; requests use list_selector
    serializer_class = ContactImportOutput
    lookup_value_converter = "uuid"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no workspace
            return self.queryset
        return selectors.contact_import_list(workspace=self.workspace)

    @extend_schema(summary="List contact imports")
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get a contact import: status, counts and per-line errors")
    def retrieve(self, request, pk=None):
        contact_import = selectors.contact_import_get(workspace=self.workspace, import_id=pk)
        return Response(ContactImportOutput(contact_import).data)


@crud_schema("label", LabelInput, LabelOutput, tags=["labels"])
class LabelViewSet(WorkspaceCrudViewSet):
    queryset = Label.objects.none()  # for the schema only; requests use list_selector
    input_serializer_class = LabelInput
    output_serializer_class = LabelOutput
    filterset_class = LabelFilter
    list_selector = selectors.label_list
    create_service = services.label_create
    update_service = services.label_update
    delete_service = services.label_delete


@crud_schema("segment", SegmentInput, SegmentOutput, tags=["segments"])
class SegmentViewSet(WorkspaceCrudViewSet):
    queryset = Segment.objects.none()  # for the schema only; requests use list_selector
    input_serializer_class = SegmentInput
    output_serializer_class = SegmentOutput
    filterset_class = SegmentFilter
    list_selector = selectors.segment_list
    create_service = services.segment_create
    update_service = services.segment_update
    delete_service = services.segment_delete

    @extend_schema(
        summary="List the contacts a segment matches",
        description="Every status; campaigns additionally keep only subscribed, unsuppressed contacts.",
        responses=ContactOutput(many=True),
        tags=["segments"],
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def contacts(self, request, pk=None):
        queryset = selectors.segment_contacts(workspace=self.workspace, segment=self.get_object())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ContactOutput(page, many=True).data)

    @extend_schema(summary="Count the contacts a segment matches", responses=CountOutput, tags=["segments"])
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def count(self, request, pk=None):
        count = selectors.segment_contact_count(workspace=self.workspace, segment=self.get_object())
        return Response(CountOutput({"count": count}).data)


@crud_schema("suppression", SuppressionInput, SuppressionOutput, tags=["suppressions"])
class SuppressionViewSet(WorkspaceCrudViewSet):
    queryset = Suppression.objects.none()  # for the schema only; requests use list_selector
    input_serializer_class = SuppressionInput
    output_serializer_class = SuppressionOutput
    filterset_class = SuppressionFilter
    list_selector = selectors.suppression_list
    create_service = services.suppression_create
    update_service = services.suppression_update
    delete_service = services.suppression_delete
