from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet

from accounts.models import Workspace
from campaigns.models import Template
from common import errors


def template_list(*, workspace: Workspace) -> QuerySet[Template]:
    return Template.objects.filter(workspace=workspace)


def template_get(*, workspace: Workspace, template_id) -> Template:
    try:
        template = Template.objects.filter(workspace=workspace, pk=template_id).first()
    except (ValueError, DjangoValidationError):  # not a UUID: no such template either
        template = None
    if template is None:
        raise errors.NotFound()
    return template


def template_name_taken(*, workspace: Workspace, name: str, exclude_id=None) -> bool:
    queryset = Template.objects.filter(workspace=workspace, name=name.strip())
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    return queryset.exists()
