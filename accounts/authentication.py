"""Bearer API keys (docs/architecture.md#tenancy). The authenticated principal carries the workspace; views read it
from `request.workspace`, set by accounts.api.WorkspaceApiMixin."""

from dataclasses import dataclass

from django.conf import settings
from django.db import OperationalError
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiKey, Workspace
from accounts.selectors import api_key_by_hash
from common.db import is_lock_timeout, sqlite_busy_timeout

LAST_USED_WAIT_MS = 100


@dataclass(frozen=True)
class ApiPrincipal:
    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def workspace(self) -> Workspace:
        return self.api_key.workspace

    @property
    def pk(self):
        return self.api_key.pk


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        try:
            scheme, _, raw = header.decode("latin-1").partition(" ")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The Authorization header is not readable.") from None
        if scheme.lower() != self.keyword or not raw.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <key>'.")
        api_key = api_key_by_hash(key_hash=ApiKey.hash_key(raw.strip()))
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid.")
        # Read from the database on every request (one indexed query), never cached: a revocation or an
        # expiry takes effect on the very next request (docs/decisions/024).
        if api_key.revoked:
            raise exceptions.AuthenticationFailed("The API key has been revoked.")
        if api_key.is_expired(timezone.now()):
            raise exceptions.AuthenticationFailed(
                f"The API key expired at {api_key.expires_at.isoformat().replace('+00:00', 'Z')}."
            )
        self._touch(api_key)
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    @staticmethod
    def _touch(api_key: ApiKey) -> None:
        # One write per key per minute at most, not one per request.
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at >= settings.API_KEY_LAST_USED_RESOLUTION:
            try:
                # A recency mark is not worth a request's wait for SQLite's one writer (docs/decisions/070):
                # busy, it is skipped and the next request of the minute writes it.
                with sqlite_busy_timeout(LAST_USED_WAIT_MS):
                    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            except OperationalError as exc:
                if not is_lock_timeout(exc):
                    raise
                return
            api_key.last_used_at = now
