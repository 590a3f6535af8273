"""Base classes for the API: authentication gives a workspace, views parse → call a service → render."""

import hashlib

from django.http import HttpResponse
from django.utils.http import parse_header_parameters
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from accounts import services
from accounts.models import IdempotencyRecord, Workspace
from common import errors
from common.exceptions import to_application_error

IDEMPOTENCY_HEADER = "Idempotency-Key"


class _Replay(Exception):
    """Raised from initial() so that DRF answers with the stored response instead of running the handler."""

    def __init__(self, record: IdempotencyRecord):
        super().__init__(record.key)
        self.record = record


class WorkspaceApiMixin:
    """Sets `request.workspace` from the API key. Every selector and service takes it.

    Every POST honours an `Idempotency-Key` header here, after authentication and throttling and before
    the handler runs, so no view has code of its own for it (docs/decisions/023)."""

    _idempotency_record: IdempotencyRecord | None = None
    _idempotency_transient = False

    # Ids are UUIDs: the routers (regex paths) match only those, so a malformed id is a 404 like any id that
    # names nothing, never a 400 from the database's UUID parsing deep in a selector.
    lookup_value_regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        request.workspace = request.auth.workspace if request.auth is not None else None
        if request.method == "POST" and request.workspace is not None:
            key = _idempotency_key(request)
            if key is not None:
                record = services.idempotency_claim(
                    workspace=request.workspace, key=key, request_hash=_request_hash(request)
                )
                if record.status == IdempotencyRecord.Status.DONE:
                    raise _Replay(record)
                self._idempotency_record = record

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            return _replayed(exc.record)
        err = to_application_error(exc)
        self._idempotency_transient = err is not None and err.transient
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        record, self._idempotency_record = self._idempotency_record, None
        if record is not None:
            self._idempotency_settle(record, response)
        return response

    def _idempotency_settle(self, record: IdempotencyRecord, response) -> None:
        """Keep the answer for the key, or give the key back. Kept: every status below 500 except an
        answer that asks for a retry (409 *_IN_PROGRESS, 429), so a 400 or 404 replays like a 201."""
        workspace = self.request.workspace
        if not isinstance(response, Response) or response.status_code >= 500 or self._idempotency_transient:
            services.idempotency_record_release(workspace=workspace, record=record)
            return
        try:
            response.render()  # what the client receives, so the replay is the same bytes
            body = response.content.decode()
        except BaseException:
            services.idempotency_record_release(workspace=workspace, record=record)
            raise
        services.idempotency_record_finish(
            workspace=workspace, record=record, response_status=response.status_code, response_body=body
        )

    @property
    def workspace(self) -> Workspace:
        # From the key, not from `request.workspace`: DRF's OPTIONS metadata runs the view's permission and
        # get_object() checks against a clone of the request (rest_framework.request.clone_request), which
        # carries the authentication over but not attributes set on the original.
        return self.request.auth.workspace


def _idempotency_key(request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    limit = IdempotencyRecord.MAX_KEY_LENGTH
    if not key.strip():
        raise errors.ValidationError.for_field(IDEMPOTENCY_HEADER, "This header may not be blank.")
    if len(key) > limit:
        raise errors.ValidationError.for_field(
            IDEMPOTENCY_HEADER, f"Ensure this header has no more than {limit} characters (it has {len(key)})."
        )
    return key


def _request_hash(request) -> str:
    """SHA-256 of what makes two requests the same request: method, path with its query (`?priority=`),
    the kind of key (a sandbox key's request is not a live key's) and the body bytes."""
    body = request.body  # nothing has read the stream yet; DRF parses from this copy later
    content_type, params = parse_header_parameters(request.content_type or "")
    if content_type == "multipart/form-data" and params.get("boundary"):
        # Clients pick a random boundary per request, so the same upload sent again differs only there.
        body = body.replace(params["boundary"].encode(), b"")
    digest = hashlib.sha256()
    for part in (request.method, request.get_full_path(), "sandbox" if request.auth.sandbox else "live"):
        digest.update(part.encode() + b"\n")
    digest.update(body)
    return digest.hexdigest()


def _replayed(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        record.response_body, status=record.response_status, content_type="application/json"
    )
    # Stripe's header for the same thing: the client can tell a replay from a first answer.
    response["Idempotent-Replayed"] = "true"
    return response


class WorkspaceCrudViewSet(WorkspaceApiMixin, viewsets.GenericViewSet):
    """List/create/read/update/delete for one workspace-scoped resource, with the work done by functions
    named on the subclass:

    - `list_selector(*, workspace) -> QuerySet` (filtering by django-filter on top)
    - `create_service(*, workspace, **validated) -> obj`
    - `update_service(*, workspace, instance, **validated) -> obj`
    - `delete_service(*, workspace, instance) -> None`

    `input_serializer_class` parses, `output_serializer_class` renders. Another workspace's object is
    a 404 because the queryset is the workspace's only.
    """

    input_serializer_class = None
    output_serializer_class = None
    lookup_field = "pk"
    lookup_value_converter = "uuid"

    list_selector = None
    create_service = None
    update_service = None
    delete_service = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            # Schema generation has no API key, so no workspace: an empty queryset types the path params.
            return (
                self.queryset if self.queryset is not None else self.output_serializer_class.Meta.model.objects.none()
            )
        return type(self).list_selector(workspace=self.workspace)

    def get_serializer_class(self):
        if self.action in {"create", "update", "partial_update"}:
            return self.input_serializer_class
        return self.output_serializer_class

    def get_object(self):
        try:
            return super().get_object()
        except (ValueError, TypeError):
            raise errors.NotFound() from None

    def render(self, instance, status_code=status.HTTP_200_OK) -> Response:
        data = self.output_serializer_class(instance, context=self.get_serializer_context()).data
        return Response(data, status=status_code)

    def _parse(self, *, partial: bool, instance=None) -> dict:
        serializer = self.input_serializer_class(
            instance=instance, data=self.request.data, partial=partial, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        data = self.output_serializer_class(page, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data)

    def retrieve(self, request, *args, **kwargs):
        return self.render(self.get_object())

    def create(self, request, *args, **kwargs):
        data = self._parse(partial=False)
        instance = type(self).create_service(workspace=self.workspace, **data)
        return self.render(instance, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        instance = self.get_object()
        data = self._parse(partial=False, instance=instance)
        return self.render(type(self).update_service(workspace=self.workspace, instance=instance, **data))

    def partial_update(self, request, *args, **kwargs):
        instance = self.get_object()
        data = self._parse(partial=True, instance=instance)
        return self.render(type(self).update_service(workspace=self.workspace, instance=instance, **data))

    def destroy(self, request, *args, **kwargs):
        instance = self.get_object()
        type(self).delete_service(workspace=self.workspace, instance=instance)
        return Response(status=status.HTTP_204_NO_CONTENT)


def crud_schema(resource: str, input_serializer, output_serializer, tags: list[str]):
    """drf-spectacular annotations for a WorkspaceCrudViewSet subclass."""
    from drf_spectacular.utils import extend_schema_view

    return extend_schema_view(
        list=extend_schema(summary=f"List {resource}s", responses=output_serializer(many=True), tags=tags),
        retrieve=extend_schema(summary=f"Get a {resource}", responses=output_serializer, tags=tags),
        create=extend_schema(
            summary=f"Create a {resource}", request=input_serializer, responses={201: output_serializer}, tags=tags
        ),
        update=extend_schema(
            summary=f"Replace a {resource}", request=input_serializer, responses=output_serializer, tags=tags
        ),
        partial_update=extend_schema(
            summary=f"Update a {resource}", request=input_serializer, responses=output_serializer, tags=tags
        ),
        destroy=extend_schema(summary=f"Delete a {resource}", responses={204: None}, tags=tags),
    )
