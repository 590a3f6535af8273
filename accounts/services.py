from django.db import IntegrityError, transaction

from accounts.models import ApiKey, Workspace
from common import errors
from common.timezones import is_valid_timezone


def workspace_create(*, name: str, timezone: str = "UTC") -> Workspace:
    name = (name or "").strip()
    if not name:
        raise errors.ValidationError.for_field("name", "This field may not be blank.")
    if not is_valid_timezone(timezone):
        raise errors.ValidationError.for_field("timezone", f"'{timezone}' is not a known IANA timezone.")
    try:
        with transaction.atomic():
            return Workspace.objects.create(name=name, timezone=timezone)
    except IntegrityError:
        raise errors.ValidationError.for_field("name", f"A workspace named '{name}' already exists.") from None


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
