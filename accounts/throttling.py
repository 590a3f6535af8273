"""The API's rate limit: requests per API key (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_key"], from
API_RATE_LIMIT), counted atomically in Redis by common.ratelimit (docs/decisions/020). Over it, DRF raises
Throttled with our wait and common.exceptions answers 429 RATE_LIMITED with Retry-After."""

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from common.ratelimit import parse_rate, rate_limit_hit


class ApiKeyRateThrottle(BaseThrottle):
    scope = "api_key"

    def allow_request(self, request, view) -> bool:
        self.retry_after = None
        # Unauthenticated requests are refused before throttling (IsAuthenticated); the schema views have no key.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # read per request: follows settings overrides
        if request.auth is None or not rate:
            return True
        decision = rate_limit_hit(scope=self.scope, ident=str(request.auth.pk), rate=parse_rate(rate))
        self.retry_after = decision.retry_after
        return decision.allowed

    def wait(self) -> float | None:
        return self.retry_after
