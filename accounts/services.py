import secrets
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone as django_timezone

from accounts import dkim_keys, verification
from accounts.models import ApiKey, DkimKey, IdempotencyRecord, SendingDomain, Workspace, normalize_domain
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
    # RSA generation takes tens of milliseconds: before the transaction, not inside it.
    key = dkim_keys.generate_key()
    try:
        with transaction.atomic():
            sending_domain = SendingDomain.objects.create(
                workspace=workspace, domain=domain, verification_token=secrets.token_hex(16)
            )
            # The first key signs at once: the domain cannot send before verify has found it in DNS anyway.
            _dkim_key_add(sending_domain, key, status=DkimKey.Status.ACTIVE)
    except IntegrityError:  # created by a concurrent request between the check and the insert
        raise duplicate from None
    return sending_domain


def _dkim_key_add(domain: SendingDomain, key: dkim_keys.GeneratedKey, *, status: str) -> DkimKey:
    return DkimKey.objects.create(
        domain=domain,
        selector=key.selector,
        status=status,
        private_key_encrypted=key.private_key_encrypted,
        public_key=key.public_key,
        activated_at=django_timezone.now() if status == DkimKey.Status.ACTIVE else None,
    )


def sending_domain_rotate_key(*, workspace: Workspace, domain_id) -> SendingDomain:
    """Start a DKIM key rotation: a new key under a new selector, `pending` (listed in dns_records, not
    signing). The next verify that finds it in DNS makes it the signing key and retires the old one. Asked
    again while a rotation is pending, it keeps that pending key (publishing it is what is awaited)."""
    domain = sending_domain_get(workspace=workspace, domain_id=domain_id)
    if domain.dkim_keys.filter(status=DkimKey.Status.PENDING).exists():
        return domain
    key = dkim_keys.generate_key()
    try:
        with transaction.atomic():
            domain = sending_domain_get(workspace=workspace, domain_id=domain.pk, for_update=True)
            if not domain.dkim_keys.filter(status=DkimKey.Status.PENDING).exists():
                # A domain that never had a key (added before keys existed) gets a signing one straight away.
                has_active = domain.dkim_keys.filter(status=DkimKey.Status.ACTIVE).exists()
                _dkim_key_add(domain, key, status=DkimKey.Status.PENDING if has_active else DkimKey.Status.ACTIVE)
    except IntegrityError:
        # A concurrent rotation added its key first (SQLite has no row lock to make us wait): keep that one.
        pass
    return domain


def _dkim_key_promote(domain: SendingDomain, pending: DkimKey) -> bool:
    """The pending key is published: it signs from now on and the active one retires. Guarded on both
    statuses, so two verifies at once promote once."""
    now = django_timezone.now()
    DkimKey.objects.filter(domain=domain, status=DkimKey.Status.ACTIVE).update(
        status=DkimKey.Status.RETIRED, retired_at=now
    )
    return bool(
        DkimKey.objects.filter(pk=pending.pk, status=DkimKey.Status.PENDING).update(
            status=DkimKey.Status.ACTIVE, activated_at=now
        )
    )


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
    """Run the DNS checks of the domain (accounts.verification): the verification TXT record, the DKIM
    record of each current key, SPF and DMARC, each with its status and message in `dns_checks`. The
    domain becomes verified (by "dns") when the verification record and the signing key's DKIM record are
    found; SPF and DMARC only warn. A pending key found in DNS becomes the signing key.

    A failed check never un-verifies a domain: a DNS timeout or a record removed after verification
    must not stop a scheduled campaign from sending; an operator revokes a domain by deleting it.
    """
    domain = sending_domain_get(workspace=workspace, domain_id=domain_id)
    keys = list(domain.dkim_keys.exclude(status=DkimKey.Status.RETIRED))
    # The lookups take up to seconds: they run before, not inside, the transaction that writes.
    report = verification.check_domain(domain=domain, keys=keys)
    with transaction.atomic():
        domain = sending_domain_get(workspace=workspace, domain_id=domain.pk, for_update=True)
        domain.last_checked_at = django_timezone.now()
        domain.dns_checks = report.checks
        domain.last_check_error = report.blocking_message()[:500]
        if report.can_send and not domain.verified:
            domain.mark_verified(by="dns")
        domain.save()
        for key in keys:
            if key.status == DkimKey.Status.PENDING and report.key_published(key):
                _dkim_key_promote(domain, key)
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
