import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone as django_timezone

from accounts import dns
from accounts.models import ApiKey, SendingDomain, Workspace, normalize_domain
from accounts.selectors import sending_domain_get
from common import errors
from common.db import unique_or_400
from common.timezones import is_valid_timezone


def workspace_create(*, name: str, timezone: str = "UTC") -> Workspace:
    name = _workspace_name(name)
    _check_timezone(timezone)
    with unique_or_400("name", f"A workspace named '{name}' already exists."):
        return Workspace.objects.create(name=name, timezone=timezone)


def workspace_update(*, workspace: Workspace, name: str | None = None, timezone: str | None = None) -> Workspace:
    if name is not None:
        workspace.name = _workspace_name(name)
    if timezone is not None:
        _check_timezone(timezone)
        workspace.timezone = timezone
    with unique_or_400("name", f"A workspace named '{workspace.name}' already exists."):
        workspace.save(update_fields=["name", "timezone"])
    return workspace


def _workspace_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise errors.ValidationError.for_field("name", "This field may not be blank.")
    return name


def _check_timezone(timezone: str) -> None:
    if not is_valid_timezone(timezone):
        raise errors.ValidationError.for_field("timezone", f"'{timezone}' is not a known IANA timezone.")


def api_key_create(*, workspace: Workspace, name: str = "", sandbox: bool = False) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which exists only in this return value."""
    raw, prefix = ApiKey.generate()
    api_key = ApiKey.objects.create(
        workspace=workspace, name=name, prefix=prefix, key_hash=ApiKey.hash_key(raw), sandbox=sandbox
    )
    return api_key, raw


def api_key_revoke(*, workspace: Workspace, api_key_id) -> ApiKey:
    updated = ApiKey.objects.filter(workspace=workspace, pk=api_key_id).update(revoked=True)
    if not updated:
        raise errors.NotFound()
    return ApiKey.objects.get(pk=api_key_id)


def sending_domain_create(*, workspace: Workspace, domain: str) -> SendingDomain:
    """Register a domain the workspace wants to send from, unverified, with the TXT value to publish."""
    try:
        domain = normalize_domain(domain)
    except ValueError as exc:
        raise errors.ValidationError.for_field("domain", str(exc)) from None
    duplicate = errors.ValidationError.for_field("domain", f"{domain} is already a sending domain of this workspace.")
    if SendingDomain.objects.filter(workspace=workspace, domain=domain).exists():
        raise duplicate
    try:
        with transaction.atomic():
            return SendingDomain.objects.create(
                workspace=workspace, domain=domain, verification_token=secrets.token_hex(16)
            )
    except IntegrityError:  # created by a concurrent request between the check and the insert
        raise duplicate from None


def sending_domain_delete(*, workspace: Workspace, instance: SendingDomain) -> None:
    deleted, _ = SendingDomain.objects.filter(workspace=workspace, pk=instance.pk).delete()
    if not deleted:
        raise errors.NotFound()


def sending_domain_verify(*, workspace: Workspace, domain_id) -> SendingDomain:
    """Look for the verification TXT record on the domain. Found: the domain is verified (by "dns").
    Not found: the reason is stored in last_check_error and the domain is returned as it was.

    A failed check never un-verifies a domain: a DNS timeout or a record removed after verification
    must not stop a scheduled campaign from sending; an operator revokes a domain by deleting it.
    """
    domain = sending_domain_get(workspace=workspace, domain_id=domain_id)
    # The lookup takes up to seconds: it runs before, not inside, the transaction that writes.
    records, reason = dns.txt_records(domain.domain)
    expected = domain.verification_record
    found = any(record.strip() == expected for record in records)
    if not found and not reason:
        reason = f"No TXT record '{expected}' on {domain.domain} (it has {len(records)} other TXT record(s))."
    with transaction.atomic():
        domain = sending_domain_get(workspace=workspace, domain_id=domain.pk, for_update=True)
        domain.last_checked_at = django_timezone.now()
        domain.last_check_error = "" if found else reason[:500]
        if found and not domain.verified:
            domain.mark_verified(by="dns")
        domain.save()
    return domain


def sending_domain_mark_verified(*, workspace: Workspace, domain_id) -> SendingDomain:
    """The operator's override of the DNS check (admin action, `add_sending_domain --verified`)."""
    with transaction.atomic():
        domain = sending_domain_get(workspace=workspace, domain_id=domain_id, for_update=True)
        if not domain.verified:
            domain.mark_verified(by="admin")
            domain.save()
    return domain
