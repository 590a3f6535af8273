from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet

from accounts import dkim_keys, verification
from accounts.models import DkimKey, SendingDomain, Workspace, normalize_domain
from common import errors
from common.addresses import domain_of


def workspace_get_by_name(*, name: str) -> Workspace:
    try:
        return Workspace.objects.get(name=name)
    except Workspace.DoesNotExist:
        raise errors.NotFound(f"No workspace named '{name}'.") from None


def sending_domain_list(*, workspace: Workspace) -> QuerySet[SendingDomain]:
    return SendingDomain.objects.filter(workspace=workspace).prefetch_related("dkim_keys")


def sending_domain_dns_records(*, domain: SendingDomain) -> list[dict]:
    """The records to publish, with the last check's status of each (accounts.verification)."""
    return verification.dns_records(domain, list(domain.dkim_keys.all()))


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


def _sending_domain_of(*, workspace_id, email: str) -> SendingDomain | None:
    try:
        domain = normalize_domain(domain_of(email) or "")
    except ValueError:
        return None
    return SendingDomain.objects.filter(workspace_id=workspace_id, domain=domain).first()


def sending_domain_warnings(*, workspace: Workspace, email: str) -> list[dict]:
    """SPF and DMARC warnings of the last check of the sender's domain, for readiness and send-plan:
    [{"code": "spf"|"dmarc", "message"}]. Nothing before the first check (the records show `pending`)."""
    domain = _sending_domain_of(workspace_id=workspace.pk, email=email)
    return dns_check_warnings(domain.dns_checks if domain is not None else {})


def dns_check_warnings(checks: dict) -> list[dict]:
    """The SPF and DMARC warnings among a domain's stored check results (see sending_domain_warnings)."""
    checks = checks or {}
    return [
        {"code": purpose, "message": checks[purpose]["message"]}
        for purpose in ("spf", "dmarc")
        if checks.get(purpose, {}).get("status") == verification.WARNING
    ]


_signers = dkim_keys.SignerCache()


def dkim_signer_for(*, workspace_id, from_email: str) -> dkim_keys.Signer | None:
    """The signer of the sender's domain in this workspace (its active key), or None: no such sending
    domain, no key, or signing is done by the relay (DKIM_SIGN_MESSAGES off). Cached for a minute."""
    if not settings.DKIM_SIGN_MESSAGES:
        return None
    domain = (domain_of(from_email) or "").lower()

    def load():
        sending_domain = _sending_domain_of(workspace_id=workspace_id, email=from_email)
        if sending_domain is None:
            return None
        key = sending_domain.dkim_keys.filter(status=DkimKey.Status.ACTIVE).first()
        if key is None:
            return None
        return dkim_keys.signer_from(
            domain=sending_domain.domain, selector=key.selector, private_key_encrypted=key.private_key_encrypted
        )

    return _signers.get((str(workspace_id), domain), load)


def dkim_signers_clear() -> None:
    """Forget cached signers (tests; a process that must see a rotation at once)."""
    _signers.clear()
