import secrets
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone as django_timezone

from accounts import dns
from accounts.models import ApiKey, IdempotencyRecord, SendingDomain, Workspace, normalize_domain
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


def api_key_create(
    *, workspace: Workspace, name: str = "", sandbox: bool = False, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which exists only in this return value. A key with
    `expires_at` is refused from that moment on (docs/decisions/024); without it, until it is revoked."""
    api_key_check_expiry(expires_at=expires_at)
    raw, prefix = ApiKey.generate()
    api_key = ApiKey.objects.create(
        workspace=workspace,
        name=name,
        prefix=prefix,
        key_hash=ApiKey.hash_key(raw),
        sandbox=sandbox,
        expires_at=expires_at,
    )
    return api_key, raw


def api_key_check_expiry(*, expires_at: datetime | None) -> None:
    """A new key's expiry lies in the future (a key born expired is a typo). Asked by the admin form too."""
    if expires_at is not None and expires_at <= django_timezone.now():
        raise errors.ValidationError.for_field("expires_at", "The expiry must be in the future.")


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


def sending_domain_get_or_create(*, workspace: Workspace, domain: str) -> tuple[SendingDomain, bool]:
    """The workspace's sending domain of that name, created when missing; True when created. For the
    operator's command, whose domain may already exist from the API (the README's first step)."""
    try:
        name = normalize_domain(domain)
    except ValueError as exc:
        raise errors.ValidationError.for_field("domain", str(exc)) from None
    existing = SendingDomain.objects.filter(workspace=workspace, domain=name).first()
    if existing is not None:
        return existing, False
    try:
        return sending_domain_create(workspace=workspace, domain=name), True
    except errors.ValidationError:  # created by a concurrent request in between
        return SendingDomain.objects.get(workspace=workspace, domain=name), False


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


def idempotency_claim(*, workspace: Workspace, key: str, request_hash: str) -> IdempotencyRecord:
    """Claim an Idempotency-Key for a request, or find the answer it already got (docs/decisions/023).

    Returns the record `in_progress` when this request now holds the key and is to run, or `done` when it
    holds the first response, to be replayed. Raises IdempotencyKeyReused when the key was used for another
    request, IdempotencyKeyInUse while the request holding it still runs. Called outside a transaction, the
    claim commits at once, so a concurrent request with the key sees it."""
    now = django_timezone.now()
    # An expired record is absent, whether or not the periodic cleanup has deleted it yet.
    IdempotencyRecord.objects.filter(workspace=workspace, key=key, expires_at__lte=now).delete()
    defaults = {"request_hash": request_hash, "created_at": now, "expires_at": now + settings.IDEMPOTENCY_KEY_TTL}
    for _ in range(3):
        try:
            # The unique (workspace, key) constraint decides: of concurrent inserts one wins, the others
            # wait for it to commit and then read its row.
            record, created = IdempotencyRecord.objects.get_or_create(workspace=workspace, key=key, defaults=defaults)
            break
        except IntegrityError:
            continue  # the winner's row was released between our insert and our read: try again
    else:
        raise errors.IdempotencyKeyInUse()
    if created:
        return record
    if record.request_hash != request_hash:
        raise errors.IdempotencyKeyReused()
    if record.status == IdempotencyRecord.Status.DONE:
        return record
    if record.created_at <= now - settings.IDEMPOTENCY_ABANDONED_AFTER and _idempotency_take_over(record, now):
        return record
    raise errors.IdempotencyKeyInUse()


def _idempotency_take_over(record: IdempotencyRecord, now: datetime) -> bool:
    """The request that claimed the record died before it answered. One request takes it over: the
    conditional UPDATE on the old created_at (the claim's fencing token) lets exactly one win."""
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk, status=IdempotencyRecord.Status.IN_PROGRESS, created_at=record.created_at
    ).update(created_at=now, expires_at=now + settings.IDEMPOTENCY_KEY_TTL)
    if taken:
        record.created_at, record.expires_at = now, now + settings.IDEMPOTENCY_KEY_TTL
    return bool(taken)


def _idempotency_claimed(*, workspace: Workspace, record: IdempotencyRecord):
    return IdempotencyRecord.objects.filter(
        workspace=workspace, pk=record.pk, status=IdempotencyRecord.Status.IN_PROGRESS, created_at=record.created_at
    )


def idempotency_record_finish(
    *, workspace: Workspace, record: IdempotencyRecord, response_status: int, response_body: str
) -> bool:
    """Keep the response of the request that holds the claim; later requests with the key replay it.
    False when the claim was taken over meanwhile (this request ran past IDEMPOTENCY_ABANDONED_AFTER)."""
    return bool(
        _idempotency_claimed(workspace=workspace, record=record).update(
            status=IdempotencyRecord.Status.DONE, response_status=response_status, response_body=response_body
        )
    )


def idempotency_record_release(*, workspace: Workspace, record: IdempotencyRecord) -> None:
    """Give the key back without an answer (a 5xx, or an answer that asks for a retry): the next request
    with the key runs."""
    _idempotency_claimed(workspace=workspace, record=record).delete()


def idempotency_records_expire(*, now: datetime | None = None) -> int:
    """Delete every record past its expiry, of all workspaces (the periodic cleanup). Returns how many."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=now or django_timezone.now()).delete()
    return deleted
