"""Send-rate limits in Redis (docs/architecture.md#delivery-engine): per workspace, and per recipient domain across all
workspaces (they share the sending IPs, and it is the mailbox provider that blocks an IP that sends too
fast), so one campaign cannot get the platform blocked by Gmail.

A token bucket per key: `rate` tokens a second flow in up to `capacity` (the burst). Taking a message's
tokens from every bucket it needs is one Lua script, so it is atomic across any number of workers: either
all buckets have a token and each loses one, or none is touched and the caller learns how long until the
emptiest one has a token again. The clock is passed in (workers' clocks, NTP-synchronised; injectable in
tests), and a clock that goes backwards counts as no time passed.

Settings (per second; None or absent = unlimited), the defaults under the throttles kept as data
(delivery.models.Throttle, docs/decisions/062):
    DELIVERY_RATE_PER_WORKSPACE = 50
    DELIVERY_RATE_PER_DOMAIN = {"gmail.com": 20, "default": 100}
    DELIVERY_THROTTLE_BURST_SECONDS = 1.0   # capacity = rate * this (at least 1 token)
    DELIVERY_BACKOFF_RECOVERY_PER_SECOND = 1/600  # a halved rate is whole again after 5 minutes
    DELIVERY_BACKOFF_MIN_FACTOR = 1/64
    DELIVERY_BACKOFF_BASE_RATE = 10  # what a deferring domain with no rate of its own is slowed from
    DELIVERY_THROTTLE_REFRESH_SECONDS = 2  # how old a batch's copy of the throttle rows may get
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import redis
from django.conf import settings

from common.addresses import domain_of
from delivery.models import Throttle

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


@dataclass(frozen=True)
class WarmUp:
    """A sending domain's ramp: `daily_caps[n]` messages on day n+1 since `started_on` (UTC days)."""

    started_on: date
    daily_caps: tuple[int, ...]

    def cap_on(self, day: date) -> int | None:
        """Today's cap; None before the ramp starts is impossible (day 1 is the start), after its last day."""
        index = (day - self.started_on).days
        if index < 0:
            return self.daily_caps[0] if self.daily_caps else None
        return self.daily_caps[index] if index < len(self.daily_caps) else None


@dataclass
class ThrottleRules:
    """One workspace's throttles (delivery.models.Throttle), read once per send batch."""

    workspace_rate: float | None = None
    recipient_domains: dict[str, float] = field(default_factory=dict)
    sending_domains: dict[str, float] = field(default_factory=dict)
    warmups: dict[str, WarmUp] = field(default_factory=dict)


def load_rules(workspace_id) -> ThrottleRules:
    rules = ThrottleRules()
    for row in Throttle.objects.filter(workspace_id=workspace_id):
        if row.scope == Throttle.Scope.WORKSPACE:
            rules.workspace_rate = row.rate_per_second
        elif row.scope == Throttle.Scope.RECIPIENT_DOMAIN and row.rate_per_second is not None:
            rules.recipient_domains[row.domain] = row.rate_per_second
        elif row.scope == Throttle.Scope.SENDING_DOMAIN:
            if row.rate_per_second is not None:
                rules.sending_domains[row.domain] = row.rate_per_second
            if row.warmup_started_on and row.warmup_daily_caps:
                rules.warmups[row.domain] = WarmUp(row.warmup_started_on, tuple(row.warmup_daily_caps))
    return rules


# A receiving domain's 4xx deferral halves its rate; the rate then recovers by RECOVERY_PER_SECOND of the
# full rate each second (additive increase, multiplicative decrease, as TCP does), never below MIN_FACTOR.
# KEYS[1]: the domain's backoff hash {factor, ts}. ARGV: now, recovery per second, 1 to halve or 0 to read.
_BACKOFF = """
local now = tonumber(ARGV[1])
local recovery = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'factor', 'ts')
local factor = tonumber(state[1])
local ts = tonumber(state[2])
if factor == nil then factor = 1 else
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  factor = math.min(1, factor + elapsed * recovery)
end
if ARGV[3] == '1' then
  factor = math.max(tonumber(ARGV[4]), factor / 2)
  redis.call('HSET', KEYS[1], 'factor', tostring(factor), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[1], math.ceil((1 - factor) / recovery) + 1)
end
return tostring(factor)
"""


class SendThrottle:
    """The limits that apply to one message: its workspace's rate, its recipient domain's rate (the
    workspace's own throttle for that domain and the platform's DELIVERY_RATE_PER_DOMAIN, each a bucket),
    its sending domain's rate and warm-up cap, with the recipient domain's rate lowered while it defers
    (docs/decisions/062). A send batch makes one instance; it reads the rows and the backoff factors again
    once they are DELIVERY_THROTTLE_REFRESH_SECONDS old, so an edit reaches a running batch within seconds."""

    def __init__(self, buckets: TokenBuckets | None = None, *, clock: Callable[[], float] = time.time):
        self.per_workspace = getattr(settings, "DELIVERY_RATE_PER_WORKSPACE", None)
        self.per_domain: dict = getattr(settings, "DELIVERY_RATE_PER_DOMAIN", None) or {}
        self.burst_seconds = float(getattr(settings, "DELIVERY_THROTTLE_BURST_SECONDS", 1.0))
        self.recovery = float(getattr(settings, "DELIVERY_BACKOFF_RECOVERY_PER_SECOND", 1 / 600))
        self.min_factor = float(getattr(settings, "DELIVERY_BACKOFF_MIN_FACTOR", 1 / 64))
        self.backoff_base = float(getattr(settings, "DELIVERY_BACKOFF_BASE_RATE", 10))
        self.refresh_seconds = float(getattr(settings, "DELIVERY_THROTTLE_REFRESH_SECONDS", 2.0))
        self.clock = clock
        self._buckets = buckets
        self._rules: dict = {}
        # Each domain's backoff factor (with when it was read): from Redis every few seconds, not per message.
        self._factors: dict[str, tuple[float, float]] = {}

    @property
    def buckets(self) -> TokenBuckets:
        if self._buckets is None:
            self._buckets = TokenBuckets(self._redis(), clock=self.clock)
        return self._buckets

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(settings.REDIS_URL)

    def rules(self, workspace_id) -> ThrottleRules:
        """The workspace's throttle rows, read again once they are DELIVERY_THROTTLE_REFRESH_SECONDS old, so
        an edit reaches a batch that is already sending (one query per workspace every few seconds)."""
        loaded = self._rules.get(workspace_id)
        now = time.monotonic()
        if loaded is None or now - loaded[0] >= self.refresh_seconds:
            loaded = self._rules[workspace_id] = (now, load_rules(workspace_id))
        return loaded[1]

    def backoff_factor(self, domain: str, *, halve: bool = False) -> float:
        """The share of its rate a recipient domain gets now (1 unless it deferred lately)."""
        now = time.monotonic()
        if halve or not self._factor_fresh(domain, now):
            self._factors[domain] = (now, float(self._backoff_call(domain, halve=halve)))
        return self._factors[domain][1]

    def prefetch_backoff(self, domains) -> None:
        """Read the backoff factors of many recipient domains in one Redis round trip (a batch's domains up
        front): the per-message `backoff_factor` then finds them cached."""
        now = time.monotonic()
        stale = sorted(d for d in set(domains) if not self._factor_fresh(d, now))
        if not stale:
            return
        pipe = self.buckets.client.pipeline(transaction=False)
        for domain in stale:
            self._backoff_call(domain, halve=False, client=pipe)
        for domain, factor in zip(stale, pipe.execute(), strict=True):
            self._factors[domain] = (now, float(factor))

    def _factor_fresh(self, domain: str, now: float) -> bool:
        cached = self._factors.get(domain)
        return cached is not None and now - cached[0] < self.refresh_seconds

    def _backoff_call(self, domain: str, *, halve: bool, client=None):
        """The backoff script for `domain`: its factor, or (in a pipeline) queued for it."""
        script = self.buckets.client.register_script(_BACKOFF)
        args = [self.clock(), self.recovery, "1" if halve else "0", self.min_factor]
        return script(keys=[f"mailsched:backoff:{domain}"], args=args, client=client)

    def record_deferral(self, *, email: str) -> float:
        """A receiving domain answered 4xx: halve its rate. Returns the new factor."""
        return self.backoff_factor(domain_of(email), halve=True)

    def limits_for(self, *, workspace_id, email: str, sending_domain: str = "") -> list[Limit]:
        rules = self.rules(workspace_id)
        burst = self.burst_seconds
        limits = []
        workspace_rate = rules.workspace_rate if rules.workspace_rate is not None else self.per_workspace
        if workspace_rate is not None:
            limits.append(Limit.per_second(f"ws:{workspace_id}", workspace_rate, burst))
        domain = domain_of(email)
        factor = self.backoff_factor(domain)
        platform = self.per_domain.get(domain, self.per_domain.get("default"))
        own = rules.recipient_domains.get(domain)
        if platform is not None:
            limits.append(Limit.per_second(f"domain:{domain}", platform * factor, burst))
        if own is not None:
            limits.append(Limit.per_second(f"ws:{workspace_id}:domain:{domain}", own * factor, burst))
        if factor < 1 and platform is None and own is None:
            limits.append(Limit.per_second(f"backoff:{domain}", self.backoff_base * factor, burst))
        sending_rate = rules.sending_domains.get(sending_domain) if sending_domain else None
        if sending_rate is not None:
            limits.append(Limit.per_second(f"ws:{workspace_id}:from:{sending_domain}", sending_rate, burst))
        return limits

    def acquire(self, *, workspace_id, email: str, sending_domain: str = "") -> float:
        """0 when the message may go now, else seconds to wait (nothing was taken)."""
        limits = self.limits_for(workspace_id=workspace_id, email=email, sending_domain=sending_domain)
        warmup = self.rules(workspace_id).warmups.get(sending_domain) if sending_domain else None
        if not limits and warmup is None:
            return 0.0
        wait = self.buckets.acquire(limits) if limits else 0.0
        if wait or warmup is None:
            return wait
        return self._take_warmup_quota(workspace_id=workspace_id, domain=sending_domain, warmup=warmup)

    def _take_warmup_quota(self, *, workspace_id, domain: str, warmup: WarmUp) -> float:
        """One message of today's warm-up cap, or the seconds until tomorrow (UTC) when it is spent."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        cap = warmup.cap_on(now.date())
        if cap is None:
            return 0.0
        key = f"mailsched:warmup:{workspace_id}:{domain}:{now.date().isoformat()}"
        client = self.buckets.client
        used = client.incr(key)
        if used == 1:
            client.expire(key, 2 * 86400)
        if used <= cap:
            return 0.0
        client.decr(key)
        tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        return max((tomorrow - now).total_seconds(), 1.0)


def sustained_rate(*, workspace_id, sending_domain: str = "") -> float | None:
    """Messages a second one workspace's mail from `sending_domain` can keep up, from the throttles in force
    (its rows, else the environment's defaults): what a send plan projects its finish from. None when
    nothing limits it. Per-recipient-domain limits are left out: they slow a part of an audience only."""
    rules = load_rules(workspace_id)
    workspace_rate = rules.workspace_rate
    if workspace_rate is None:
        workspace_rate = getattr(settings, "DELIVERY_RATE_PER_WORKSPACE", None)
    rates = [rate for rate in (workspace_rate, rules.sending_domains.get(sending_domain)) if rate]
    return min(rates) if rates else None
