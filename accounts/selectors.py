from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet

from accounts.models import SendingDomain, Workspace, normalize_domain
from common import errors
from common.addresses import domain_of


def workspace_get_by_name(*, name: str) -> Workspace:
    try:
        return Workspace.objects.get(name=name)
    except Workspace.DoesNotExist:
        raise errors.NotFound(f"No workspace named '{name}'.") from None


def sending_domain_list(*, workspace: Workspace) -> QuerySet[SendingDomain]:
    return SendingDomain.objects.filter(workspace=workspace)


def sending_domain_get(*, workspace: Workspace, domain_id, for_update: bool = False) -> SendingDomain:
    queryset = SendingDomain.objects.filter(workspace=workspace)
    if for_update:
        queryset = queryset.select_for_update()
    try:
        domain = queryset.filter(pk=domain_id).first()
    except (ValueError, DjangoValidationError):  # not a UUID: no such domain either
        domain = None
    if domain is None:
        raise errors.NotFound()
    return domain


def sending_domain_is_verified(*, workspace: Workspace, email: str) -> bool:
    """Whether the domain of `email` is a verified sending domain of the workspace. Exact match only:
    verifying example.com does not cover news.example.com, as with the ESPs' domain authentication."""
    domain = domain_of(email)
    if not domain:
        return False
    try:
        domain = normalize_domain(domain)
    except ValueError:
        return False
    return SendingDomain.objects.filter(workspace=workspace, domain=domain, verified=True).exists()
