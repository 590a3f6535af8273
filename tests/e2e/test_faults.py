"""Fault injection against the real engine: workers killed with SIGKILL mid-send, Redis restarted, beat
down across a scheduled instant. Each ends with every recipient reached, no duplicate beyond the one
message in flight at each kill (and those flagged), and the campaign sent."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign
from delivery.models import Delivery, Event
from tests.e2e.conftest import recipients_at, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def sent_campaign(mailing) -> bool:
    return mailing.refresh().status in Campaign.FINISHED


def assert_everyone_once_except_flagged(mailing, sink, *, kills: int) -> None:
    received = Counter(recipients_at(sink))
    assert sorted(received) == mailing.emails  # nobody lost, nobody else
    duplicated = {email for email, n in received.items() if n > 1}
    assert sum(received[email] - 1 for email in duplicated) <= kills
    flagged = set(
        Delivery.objects.filter(campaign=mailing.campaign, possible_duplicate=True).values_list(
            "email", flat=True
        )
    )
    assert duplicated <= flagged
    statuses = Counter(Delivery.objects.filter(campaign=mailing.campaign).values_list("status", flat=True))
    assert statuses == {"sent": len(mailing.emails)}
    # Every message left exactly one `sent` event despite the kills and concurrent batches: an outcome and its
    # event are written by one statement (delivery.services._Batch._write).
    sent_events = Counter(
        Event.objects.filter(campaign_id=mailing.campaign.id, type="sent").values_list("delivery_id", flat=True)
    )
    assert set(sent_events.values()) == {1}
    assert set(sent_events) == set(Delivery.objects.filter(campaign=mailing.campaign).values_list("id", flat=True))


def test_bulk_worker_killed_several_times_mid_send_loses_no_one(engine, sink, make_mailing):
    mailing = make_mailing(3000)
    mailing.schedule_in(1)
    kills = 0
    for share in (0.15, 0.4, 0.65):
        wait_for(lambda s=share: len(sink.messages) >= 3000 * s, timeout=40, what=f"{share:.0%} of the send")
        engine.bulk.kill()
        kills += 1
        engine.bulk.start()

    wait_for(lambda: sent_campaign(mailing), timeout=55, what="the campaign to be sent after the kills")

    assert_everyone_once_except_flagged(mailing, sink, kills=kills)


def test_a_redis_restart_mid_send_loses_no_one(private_redis, engine_factory, sink, make_mailing):
    sink.handler.delay = 0.004
    engine = engine_factory(redis_url=private_redis.url).start()
    mailing = make_mailing(1000)
    mailing.schedule_in(1)
    wait_for(lambda: len(sink.messages) >= 200, timeout=40, what="the send to start")

    private_redis.stop()  # no persistence: every queued and ETA task in it is gone
    private_redis.start()  # same port, empty

    wait_for(lambda: sent_campaign(mailing), timeout=55, what="the campaign to be sent after the restart")
    assert engine.default.running and engine.bulk.running
    assert_everyone_once_except_flagged(mailing, sink, kills=0)


def test_beat_down_across_the_scheduled_time_launches_when_it_is_back(engine_factory, sink, make_mailing):
    engine = engine_factory().start(beat=False)
    mailing = make_mailing(50)
    at = mailing.schedule_in(1)

    wait_for(
        lambda: timezone.now() > at + timedelta(seconds=2), timeout=10, what="the scheduled time to pass"
    )
    assert mailing.refresh().status == Campaign.Status.SCHEDULED
    assert not sink.messages
    engine.beat.start()

    wait_for(lambda: sent_campaign(mailing), timeout=40, what="the campaign to be sent once beat is back")
    assert sorted(recipients_at(sink)) == mailing.emails
    assert mailing.campaign.runs.get().due_at == at
