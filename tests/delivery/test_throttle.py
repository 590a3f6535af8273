"""The Redis token buckets, on real Redis, with the clock passed in (no sleeping)."""

import uuid

import pytest
import redis
from django.conf import settings

from delivery.throttle import Limit, SendThrottle, TokenBuckets

T0 = 1_800_000_000.0


@pytest.fixture
def buckets():
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = f"test:throttle:{uuid.uuid4().hex}:"
    yield TokenBuckets(client, prefix=prefix)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def granted(buckets, limits, *, at: float, tries: int) -> int:
    return sum(buckets.acquire(limits, now=at) == 0 for _ in range(tries))


def test_a_full_bucket_grants_its_burst_at_once(buckets):
    limit = Limit(key="k", rate=5, capacity=10)
    assert granted(buckets, [limit], at=T0, tries=15) == 10


def test_an_empty_bucket_says_how_long_until_the_next_token(buckets):
    limit = Limit(key="k", rate=4, capacity=1)
    buckets.acquire([limit], now=T0)
    assert buckets.acquire([limit], now=T0) == pytest.approx(0.25)
    assert buckets.acquire([limit], now=T0 + 0.1) == pytest.approx(0.15)


def test_tokens_refill_at_the_rate_as_time_passes(buckets):
    limit = Limit(key="k", rate=2, capacity=2)
    granted(buckets, [limit], at=T0, tries=2)
    assert granted(buckets, [limit], at=T0 + 0.5, tries=5) == 1
    assert granted(buckets, [limit], at=T0 + 1.5, tries=5) == 2


def test_refill_never_exceeds_the_capacity(buckets):
    limit = Limit(key="k", rate=10, capacity=3)
    buckets.acquire([limit], now=T0)
    assert granted(buckets, [limit], at=T0 + 3600, tries=10) == 3


def test_sustained_rate_is_respected_over_time(buckets):
    limit = Limit(key="k", rate=5, capacity=5)
    total = sum(granted(buckets, [limit], at=T0 + step / 10, tries=3) for step in range(100))
    # The burst of 5, then 9.9 seconds (the last try is at T0 + 9.9) at 5/s: 5 + 49.5, whole tokens only.
    assert total == 54


def test_a_refusal_by_one_bucket_takes_nothing_from_the_others(buckets):
    roomy, tight = Limit(key="roomy", rate=1, capacity=2), Limit(key="tight", rate=1, capacity=1)
    assert buckets.acquire([roomy, tight], now=T0) == 0
    assert buckets.acquire([roomy, tight], now=T0) > 0
    assert buckets.acquire([roomy], now=T0) == 0  # still had its second token


def test_a_clock_going_backwards_adds_no_tokens(buckets):
    limit = Limit(key="k", rate=1, capacity=1)
    buckets.acquire([limit], now=T0)
    assert buckets.acquire([limit], now=T0 - 100) > 0


def test_buckets_are_shared_between_workers(buckets):
    other_worker = TokenBuckets(buckets.client, prefix=buckets.prefix)
    limit = Limit(key="k", rate=1, capacity=1)
    assert buckets.acquire([limit], now=T0) == 0
    assert other_worker.acquire([limit], now=T0) > 0


def test_send_throttle_uses_the_domain_rate_or_the_default(settings, workspace):
    settings.DELIVERY_RATE_PER_WORKSPACE = 50
    settings.DELIVERY_RATE_PER_DOMAIN = {"gmail.com": 20, "default": 100}
    throttle = SendThrottle()
    assert throttle.limits_for(workspace_id=workspace.id, email="a@Gmail.com") == [
        Limit(key=f"ws:{workspace.id}", rate=50, capacity=50),
        Limit(key="domain:gmail.com", rate=20, capacity=20),
    ]
    assert throttle.limits_for(workspace_id=workspace.id, email="a@example.org")[1].rate == 100


def test_send_throttle_without_limits_takes_no_token(settings, workspace):
    settings.DELIVERY_RATE_PER_WORKSPACE = None
    settings.DELIVERY_RATE_PER_DOMAIN = {"default": None}
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(*client.keys("mailsched:throttle:*") or ["none"])
    throttle = SendThrottle()
    assert throttle.acquire(workspace_id=workspace.id, email="a@example.org") == 0
    assert client.keys("mailsched:throttle:*") == []
