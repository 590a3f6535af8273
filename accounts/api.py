"""Base classes for the API: authentication gives a workspace, views parse → call a service → render."""

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.response import Response

from accounts.models import Workspace
from common import errors


class WorkspaceApiMixin:
    """Sets `request.workspace` from the API key. Every selector and service takes it."""

    # Ids are UUIDs: the routers (regex paths) match only those, so a malformed id is a 404 like any id that
    # names nothing, never a 400 from the database's UUID parsing deep in a selector.
    lookup_value_regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        request.workspace = request.auth.workspace if request.auth is not None else None

    @property
    def workspace(self) -> Workspace:
        # From the key, not from `request.workspace`: DRF's OPTIONS metadata runs the view's permission and
        # get_object() checks against a clone of the request (rest_framework.request.clone_request), which
        # carries the authentication over but not attributes set on the original.
        return self.request.auth.workspace


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
