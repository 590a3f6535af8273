from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections, router
from django.db.models import QuerySet

from accounts import dkim_keys, verification
from accounts.models import ApiKey, DkimKey, SendingDomain, Workspace, normalize_domain
from common import errors
from common.addresses import domain_of


def api_key_by_hash(*, key_hash: str) -> ApiKey | None:
    """The API key with this hash and its workspace, or None: one indexed query, as
    `ApiKey.objects.select_related("workspace").filter(key_hash=...).first()` but with its SQL written once
    per process. Every API request runs it; the ORM spent ~1 ms of CPU building and compiling the same
    statement each time (bench/run api-cpu). The values go through the same per-field converters the ORM
    applies (UUIDs and datetimes on SQLite are text until converted)."""
    alias = router.db_for_read(ApiKey)
    connection = connections[alias]
    sql, key_converters, workspace_converters = _api_key_statement(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(key_converters)
    api_key = ApiKey.from_db(alias, None, _converted(row[:split], key_converters, connection))
    workspace = Workspace.from_db(alias, None, _converted(row[split:], workspace_converters, connection))
    api_key.workspace = workspace  # what select_related would have cached: same id, no second query
    return api_key


_API_KEY_STATEMENTS: dict[str, tuple] = {}


def _api_key_statement(connection) -> tuple[str, list, list]:
    found = _API_KEY_STATEMENTS.get(connection.vendor)
    if found is None:
        quote = connection.ops.quote_name
        key_fields, workspace_fields = ApiKey._meta.concrete_fields, Workspace._meta.concrete_fields
        columns = [f"k.{quote(f.column)}" for f in key_fields] + [f"w.{quote(f.column)}" for f in workspace_fields]
        sql = (
            f"SELECT {', '.join(columns)} FROM {quote(ApiKey._meta.db_table)} k "
            f"JOIN {quote(Workspace._meta.db_table)} w ON w.{quote(Workspace._meta.pk.column)} = "
            f"k.{quote(ApiKey._meta.get_field('workspace').column)} WHERE k.{quote('key_hash')} = %s"
        )
        found = _API_KEY_STATEMENTS[connection.vendor] = (
            sql,
            [_converters(f, connection) for f in key_fields],
            [_converters(f, connection) for f in workspace_fields],
        )
    return found


def _converters(field, connection) -> tuple[list, object]:
    # The ORM's own list for a selected column (SQLCompiler.get_converters): the backend's, then the field's.
    expression = field.get_col(field.model._meta.db_table)
    return connection.ops.get_db_converters(expression) + expression.get_db_converters(connection), expression


def _converted(values, converters, connection) -> list:
    out = []
    for value, (functions, expression) in zip(values, converters, strict=True):
        for function in functions:
            value = function(value, expression, connection)
        out.append(value)
    return out


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
