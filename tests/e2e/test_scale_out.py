"""Scale-out, proven: two "machines", each its own set of processes with its own node names (beat, a
default worker, a bulk worker), share one PostgreSQL and one Redis. One campaign launched once reaches every
recipient exactly once, both bulk workers take part, and the two beats do not launch it twice. The
throughput of one machine against two is measured by `bench/run scaleout` (README, Performance)."""

from collections import Counter

import pytest

from campaigns.models import Campaign, CampaignRun
from delivery.models import Delivery
from tests.e2e.conftest import LOG_DIR, recipients_at, wait_for

pytestmark = pytest.mark.slow

RECIPIENTS = 800


def _machine(engine_factory, redis_url: str, name: str):
    engine = engine_factory(redis_url=redis_url)
    for process in (engine.default, engine.bulk, engine.beat):
        process.name = f"scaleout-{name}-{process.name}"
        (LOG_DIR / f"{process.name}.log").unlink(missing_ok=True)
    return engine


def _ready(process) -> bool:
    # Engine.wait_until_ready pings through the test settings' broker; these machines use a private Redis.
    assert process.running, f"{process.name} exited; see {LOG_DIR / process.name}.log"
    return " ready." in (LOG_DIR / f"{process.name}.log").read_text()


def test_two_machines_send_one_campaign_to_every_recipient_exactly_once(
    engine_factory, private_redis, make_mailing, sink
):
    machines = [_machine(engine_factory, private_redis.url, name) for name in ("a", "b")]
    for engine in machines:
        engine.start()
    for engine in machines:
        for process in (engine.default, engine.bulk):
            wait_for(lambda p=process: _ready(p), timeout=90, what=f"{process.name} to start", every=0.5)
    assert machines[0].tag != machines[1].tag  # distinct node names: default-<tag>@host, bulk-<tag>@host

    mailing = make_mailing(RECIPIENTS, suppressed=5)
    mailing.schedule_in(3)
    wait_for(lambda: len(sink.messages) >= RECIPIENTS, timeout=180, what=f"{RECIPIENTS} messages at the sink")
    wait_for(lambda: mailing.refresh().status in Campaign.FINISHED, timeout=60, what="the campaign to finish")

    received = Counter(recipients_at(sink))
    assert sorted(received) == mailing.emails
    assert set(received.values()) == {1}
    assert CampaignRun.objects.filter(campaign=mailing.campaign).count() == 1
    assert set(Delivery.objects.filter(run__campaign=mailing.campaign).values_list("status", flat=True)) == {"sent"}
    for engine in machines:
        log = (LOG_DIR / f"{engine.bulk.name}.log").read_text()
        assert "delivery.tasks.send_batch" in log and "succeeded" in log, f"{engine.bulk.name} sent nothing"
