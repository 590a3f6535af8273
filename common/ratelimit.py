"""Request rate limits in Redis, one mechanism for the API (per API key, accounts.throttling) and the tracking
endpoints (per client IP, delivery.views). docs/decisions/020 says why it looks like this.

`limit/period` means what it says: at most `limit` requests in any `period` seconds (a sliding window, the
meaning DRF's throttle rates had). Each key is a sorted set of the times of its allowed requests in the last
period; a request drops the ones older than that, and is allowed and added when fewer than `limit` remain.
That is one Lua script, which Redis runs alone, so no two web processes can both take the last slot (DRF's
SimpleRateThrottle read the list from the cache and wrote it back, and concurrent requests overwrote each
other's). A refused request is not added: a client that keeps hammering gets in again as its old requests
age out, it is not locked out. A key costs Redis about 120 bytes per request it holds (720 KB for a key at
6000/min) and expires one period after its last allowed request.

Time is the web process's clock in integer microseconds (injectable with time-machine in tests, like
delivery.throttle's); NTP keeps web hosts within milliseconds, and a skew of `d` seconds shifts the window of
one host by `d`. A clock behind the others only finds less room.

When Redis does not answer, the request is let through unchecked and `ratelimit.fail_open` is logged as a
warning (decision 020: the API's writes land in PostgreSQL, so refusing everything while Redis is down would
turn a cache outage into an API outage).
"""

import ipaddress
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "mailsched:ratelimit:"
# Redis answers in well under a millisecond; a limiter waiting longer than this for it is better off
# letting the request through than holding a web worker.
REDIS_TIMEOUT_SECONDS = 0.25
# While Redis is down, at most one fail-open warning per scope this often (with the count since the last).
FAIL_OPEN_LOG_EVERY_SECONDS = 10.0

# KEYS[1]: the key, a sorted set of allowed requests scored by their time. ARGV: now and period (integer
# microseconds), limit, and a member unique to this request. Returns {1, 0} when allowed, {0, microseconds
# until the oldest request leaves the window} when not. Times are written with %.0f: tostring() keeps 14
# digits and would round a microsecond timestamp (16 digits).
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - period))
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000))
  return {1, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, string.format('%.0f', tonumber(oldest[2]) + period - now)}
"""

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


@dataclass(frozen=True)
class Rate:
    limit: int  # requests ...
    period: int  # ... in any this many seconds


@lru_cache(maxsize=64)
def parse_rate(text: str) -> Rate:
    """`6000/min`, `10/s`, `100/hour`, `5000/day` (DRF's throttle rate form). A bad value is a ValueError
    naming it; the settings parse theirs at import, so a typo stops the process from starting."""
    count, slash, unit = str(text).strip().partition("/")
    period = _UNITS.get(unit.strip().lower())
    if not slash or period is None or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"Rate {text!r} is not of the form '<requests>/<s|min|hour|day>', e.g. '6000/min'.")
    return Rate(limit=int(count), period=period)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a request of this key would be allowed; 0.0 when this one was
    checked: bool = True  # False: Redis did not answer and the request was let through unchecked


class FailOpenLog:
    """Reports requests let through unchecked because Redis failed: a warning at the first one, then at
    most one per FAIL_OPEN_LOG_EVERY_SECONDS per scope while it lasts, and a last one when Redis answers
    again. Each line carries `unchecked=N`, the requests let through since the previous line, so the lines
    sum to the requests that went unlimited (one line per request would be 100 lines a second)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}

    def failed(self, scope: str, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            count = self._pending.get(scope, 0) + 1
            last = self._last_logged.get(scope)
            if last is not None and now - last < FAIL_OPEN_LOG_EVERY_SECONDS:
                self._pending[scope] = count
                return
            self._pending[scope] = 0
            self._last_logged[scope] = now
        self._log(scope, count, f"{type(exc).__name__}: {exc}")

    def answered(self, scope: str) -> None:
        if scope not in self._last_logged:  # the common case: no outage, no lock
            return
        with self._lock:
            count = self._pending.pop(scope, 0)
            self._last_logged.pop(scope, None)
        if count:
            self._log(scope, count, "none, Redis answers again")

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
            self._last_logged.clear()

    @staticmethod
    def _log(scope: str, count: int, error: str) -> None:
        logger.warning(
            "ratelimit.fail_open scope=%s unchecked=%d error=%s",
            scope,
            count,
            error,
            extra={"ratelimit_scope": scope, "ratelimit_unchecked": count},
        )


fail_open_log = FailOpenLog()

_clients: dict[str, tuple[redis.Redis, object]] = {}
_clients_lock = threading.Lock()


def _script_for(url: str):
    """One connection pool and registered script per Redis URL (settings may point elsewhere in tests)."""
    found = _clients.get(url)
    if found is None:
        with _clients_lock:
            found = _clients.get(url)
            if found is None:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
                )
                found = _clients[url] = (client, client.register_script(_SLIDING_WINDOW))
    return found[1]


def rate_limit_hit(*, scope: str, ident: str, rate: Rate) -> Decision:
    """Count one request of `ident` (an API key id, a client address) against `rate` in `scope`, atomically
    across every process sharing the Redis of settings.REDIS_URL. Never raises for Redis trouble: see the
    module docstring."""
    try:
        allowed, wait_us = _script_for(settings.REDIS_URL)(
            keys=[f"{KEY_PREFIX}{scope}:{ident}"],
            args=[time.time_ns() // 1000, rate.period * 1_000_000, rate.limit, secrets.token_hex(8)],
        )
    except redis.RedisError as exc:
        fail_open_log.failed(scope, exc)
        return Decision(allowed=True, retry_after=0.0, checked=False)
    fail_open_log.answered(scope)
    if int(allowed) == 1:
        return Decision(allowed=True, retry_after=0.0)
    return Decision(allowed=False, retry_after=int(wait_us) / 1_000_000)


def client_ip(request) -> str:
    """The address a request came from: REMOTE_ADDR, unless settings.TRUSTED_PROXY_COUNT says how many
    proxies of ours stand in front of the app. Each proxy appends the address it received the request from
    to X-Forwarded-For, so the client is the N-th entry from the right; anything left of it was written by
    the client and is not believed. A header too short or not an address falls back to REMOTE_ADDR."""
    remote = request.META.get("REMOTE_ADDR", "")
    hops = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if hops <= 0:
        return remote
    entries = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(entries) < hops:
        return remote
    candidate = entries[-hops]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return remote
    return candidate


def client_key(request) -> str:
    """The identity a per-client limit counts: the IPv4 address, or the /64 of an IPv6 address. A host picks
    its own interface identifier, the low 64 bits (RFC 4291 §2.5.1), and privacy addresses change it at will
    (RFC 8981), so per address one client would be 2**64 clients."""
    ip = client_ip(request)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
