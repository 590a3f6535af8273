"""The launch tick, the launch rule and closing ended runs (campaigns.launching), on real PostgreSQL and Redis.
Time is set with time-machine or passed in; nothing here sleeps."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connections

from campaigns import launching
from campaigns import services as campaign_services
from campaigns.models import Campaign, CampaignRun
from delivery.models import Delivery
from tests.factories import (
    CampaignFactory,
    CampaignRunFactory,
    ContactFactory,
    DeliveryFactory,
    LabelFactory,
    SendingDomainFactory,
)
from tests.threads import run_threads

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def audience(workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    label = LabelFactory(workspace=workspace, name="members")
    ContactFactory.create_batch(2, workspace=workspace, labels=[label])
    return {
        "include_labels": [str(label.id)],
        "exclude_labels": [],
        "include_segments": [],
        "exclude_segments": [],
    }


def schedule(workspace, audience, *, at: datetime, now: datetime, **schedule_fields) -> Campaign:
    campaign = CampaignFactory(workspace=workspace, audience=audience)
    fields = {"schedule_type": "scheduled", "scheduled_at": at.isoformat()} | schedule_fields
    request = campaign_services.schedule_parse(**fields, now=now)
    return campaign_services.campaign_schedule(
        workspace=workspace, campaign_id=campaign.id, request=request, now=now
    )



def test_a_campaign_due_within_the_horizon_gets_its_launch_enqueued_once(workspace, audience):
    campaign = schedule(workspace, audience, at=T0, now=T0 - timedelta(hours=1))

    first = launching.campaigns_dispatch_due(now=T0 - timedelta(seconds=10))
    second = launching.campaigns_dispatch_due(now=T0 - timedelta(seconds=8))

    campaign.refresh_from_db()
    assert (first.launches, second.launches) == (1, 0)
    assert campaign.launch_enqueued_at == T0 - timedelta(seconds=10)


def test_a_campaign_beyond_the_horizon_is_left_in_the_database(workspace, audience, settings):
    settings.DISPATCH_HORIZON_SECONDS = 30
    schedule(workspace, audience, at=T0, now=T0 - timedelta(hours=1))

    assert launching.campaigns_dispatch_due(now=T0 - timedelta(seconds=31)).launches == 0


def test_a_launch_lost_with_redis_is_enqueued_again_after_the_grace(workspace, audience, settings):
    settings.DELIVERY_LAUNCH_REENQUEUE_AFTER_SECONDS = 120
    schedule(workspace, audience, at=T0, now=T0 - timedelta(hours=1))
    launching.campaigns_dispatch_due(now=T0 - timedelta(seconds=10))

    assert launching.campaigns_dispatch_due(now=T0 + timedelta(seconds=100)).launches == 0
    assert launching.campaigns_dispatch_due(now=T0 + timedelta(seconds=111)).launches == 1


def test_a_campaign_launches_at_its_scheduled_instant_and_not_before(workspace, audience):
    campaign = schedule(workspace, audience, at=T0, now=T0 - timedelta(hours=1))

    with time_machine.travel(T0 - timedelta(seconds=2), tick=False):
        wait = launching.launch_due(campaign_id=campaign.id, due_at=T0)
        campaign.refresh_from_db()
        assert (wait, campaign.status) == (2.0, Campaign.Status.SCHEDULED)
    with time_machine.travel(T0, tick=False):
        assert launching.launch_due(campaign_id=campaign.id, due_at=T0) is None

    campaign.refresh_from_db()
    run = campaign.runs.get()
    assert (campaign.status, run.due_at, run.status) == (
        Campaign.Status.SENDING,
        T0,
        CampaignRun.Status.PENDING,
    )


def test_a_tick_that_finds_the_dispatch_lock_taken_does_nothing(workspace, audience):
    schedule(workspace, audience, at=T0, now=T0 - timedelta(hours=1))
    # Another dispatcher's tick in progress: the same lock, held by another connection's transaction.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [launching.LAUNCH_LOCK_KEY])
            result = launching.campaigns_dispatch_due(now=T0)
            cursor.execute("ROLLBACK")
    finally:
        other.close()

    assert (result.locked_out, result.launches) == (True, 0)


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_launch_each_run_once(audience, workspace):
    campaign = schedule(workspace, audience, at=T0, now=T0 - timedelta(hours=1))
    # All ticks are done before any launch; a thread that fails breaks the barrier for the others.
    ticked = threading.Barrier(4, timeout=10)

    def beat() -> int:
        launches = launching.campaigns_dispatch_due(now=T0).launches
        ticked.wait()
        launching.launch_due(campaign_id=campaign.id, due_at=T0, now=T0)
        return launches

    launches = run_threads(*[beat] * 4)

    assert sorted(launches) == [0, 0, 0, 1]
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1


def test_recurring_runs_keep_their_local_time_across_the_dst_change(workspace, audience):
    config = {"frequency": "daily", "time": "09:00", "time_zone": "America/New_York"}
    campaign = schedule(
        workspace,
        audience,
        at=T0,
        now=datetime(2026, 3, 6, 20, 0, tzinfo=UTC),
        schedule_type="recurring",
        scheduled_at=None,
        recurring_config=config,
    )
    launched = []
    for _ in range(2):
        due_at = Campaign.objects.get(pk=campaign.pk).next_run_at
        with time_machine.travel(due_at, tick=False):
            assert launching.campaigns_dispatch_due().launches == 1
            launching.launch_due(campaign_id=campaign.id, due_at=due_at)
            run = CampaignRun.objects.get(campaign=campaign, due_at=due_at)
            CampaignRun.objects.filter(pk=run.pk).update(status=CampaignRun.Status.SENDING)
            campaign_services.campaign_run_finished(run_id=run.pk)
        launched.append(due_at)

    # 09:00 in New York: EST (UTC-5) on 7 March, EDT (UTC-4) from 8 March 2026.
    assert launched == [datetime(2026, 3, 7, 14, 0, tzinfo=UTC), datetime(2026, 3, 8, 13, 0, tzinfo=UTC)]
    assert Campaign.objects.get(pk=campaign.pk).next_run_at == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_a_pending_run_whose_fan_out_was_lost_gets_it_again(workspace, settings):
    settings.DELIVERY_FANOUT_REENQUEUE_AFTER_SECONDS = 60
    run = CampaignRunFactory(campaign__workspace=workspace, status=CampaignRun.Status.PENDING)
    created = run.created_at

    assert launching.campaigns_dispatch_due(now=created + timedelta(seconds=30)).fan_outs == 0
    assert launching.campaigns_dispatch_due(now=created + timedelta(seconds=61)).fan_outs == 1
    assert launching.campaigns_dispatch_due(now=created + timedelta(seconds=62)).fan_outs == 0


def test_a_run_whose_deliveries_all_ended_is_closed_by_the_reaper(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    DeliveryFactory(run=run, status=Delivery.Status.SENT)
    DeliveryFactory(run=run, status=Delivery.Status.SKIPPED)

    assert launching.close_ended_runs() == [run.id]
    run.refresh_from_db()
    run.campaign.refresh_from_db()
    assert (run.status, run.sent, run.skipped) == (CampaignRun.Status.SENT, 1, 1)
    assert run.campaign.status == Campaign.Status.SENT


def test_a_run_with_a_delivery_still_queued_is_not_closed(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    DeliveryFactory(run=run, status=Delivery.Status.SENT)
    DeliveryFactory(run=run)

    assert launching.close_ended_runs() == []


