"""Send-rate limits in Redis (docs/architecture.md#delivery-engine): per workspace, and per recipient domain across all
workspaces (they share the sending IPs, and it is the mailbox provider that blocks an IP that sends too
fast), so one campaign cannot get the platform blocked by Gmail.

A token bucket per key: `rate` tokens a second flow in up to `capacity` (the burst). Taking a message's
tokens from every bucket it needs is one Lua script, so it is atomic across any number of workers: either
all buckets have a token and each loses one, or none is touched and the caller learns how long until the
emptiest one has a token again. The clock is passed in (workers' clocks, NTP-synchronised; injectable in
tests), and a clock that goes backwards counts as no time passed.

Settings (per second; None or absent = unlimited):
    DELIVERY_RATE_PER_WORKSPACE = 50
    DELIVERY_RATE_PER_DOMAIN = {"gmail.com": 20, "default": 100}
    DELIVERY_THROTTLE_BURST_SECONDS = 1.0   # capacity = rate * this (at least 1 token)
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings

from common.addresses import domain_of

# KEYS: one per bucket. ARGV: now, then rate and capacity for each key.
# A bucket is a hash {tokens, ts}; it expires once it would be full again anyway (no stale keys).
_ACQUIRE = """
local now = tonumber(ARGV[1])
local n = #KEYS
local tokens = {}
local wait = 0
for i = 1, n do
  local rate = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local have = tonumber(state[1])
  local ts = tonumber(state[2])
  if have == nil then
    have = capacity
  else
    local elapsed = now - ts
    if elapsed < 0 then elapsed = 0 end
    have = math.min(capacity, have + elapsed * rate)
  end
  tokens[i] = have
  if have < 1 then
    local need = (1 - have) / rate
    if need > wait then wait = need end
  end
end
if wait > 0 then
  return tostring(wait)
end
for i = 1, n do
  local rate = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local left = tokens[i] - 1
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil((capacity - left) / rate) + 1)
end
return '0'
"""


@dataclass(frozen=True)
class Limit:
    key: str
    rate: float  # tokens per second
    capacity: float  # burst

    @classmethod
    def per_second(cls, key: str, rate: float, burst_seconds: float = 1.0) -> "Limit":
        return cls(key=key, rate=float(rate), capacity=max(1.0, float(rate) * burst_seconds))


class TokenBuckets:
    """Atomic multi-bucket acquire. `acquire` returns 0.0 when a token was taken from every bucket,
    else the seconds to wait before trying again (and nothing was taken)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "mailsched:throttle:",
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._script = client.register_script(_ACQUIRE)

    def acquire(self, limits: list[Limit], *, now: float | None = None) -> float:
        if not limits:
            return 0.0
        args: list[float] = [self.clock() if now is None else now]
        for limit in limits:
            args += [limit.rate, limit.capacity]
        wait = float(self._script(keys=[self.prefix + limit.key for limit in limits], args=args))
        return wait


class SendThrottle:
    """The limits of DELIVERY_RATE_* applied to one message: its workspace's bucket and its recipient
    domain's bucket."""

    def __init__(self, buckets: TokenBuckets | None = None):
        self.per_workspace = getattr(settings, "DELIVERY_RATE_PER_WORKSPACE", None)
        self.per_domain: dict = getattr(settings, "DELIVERY_RATE_PER_DOMAIN", None) or {}
        self.burst_seconds = float(getattr(settings, "DELIVERY_THROTTLE_BURST_SECONDS", 1.0))
        self.enabled = self.per_workspace is not None or any(v is not None for v in self.per_domain.values())
        if buckets is None and self.enabled:
            buckets = TokenBuckets(redis.Redis.from_url(settings.REDIS_URL))
        self.buckets = buckets

    def limits_for(self, *, workspace_id, email: str) -> list[Limit]:
        limits = []
        if self.per_workspace is not None:
            limits.append(Limit.per_second(f"ws:{workspace_id}", self.per_workspace, self.burst_seconds))
        domain = domain_of(email)
        rate = self.per_domain.get(domain, self.per_domain.get("default"))
        if rate is not None:
            limits.append(Limit.per_second(f"domain:{domain}", rate, self.burst_seconds))
        return limits

    def acquire(self, *, workspace_id, email: str) -> float:
        if not self.enabled:
            return 0.0
        return self.buckets.acquire(self.limits_for(workspace_id=workspace_id, email=email))
