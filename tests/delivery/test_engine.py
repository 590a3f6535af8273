"""The dispatcher tick and the lease reaper (delivery.engine), on real PostgreSQL and Redis.
Time is set with time-machine or passed in; nothing here sleeps."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.models import CampaignRun
from delivery import engine
from delivery.models import Delivery, Event, SendProgress
from tests.factories import (
    CampaignRunFactory,
    DeliveryFactory,
    SendProgressFactory,
)
from tests.threads import in_background

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


# --- deliveries -----------------------------------------------------------------------------------------


def test_due_deliveries_are_enqueued_in_batches_with_the_batch_send_time_as_eta(workspace, settings):
    settings.DELIVERY_BATCH_SIZE = 3
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    due = [DeliveryFactory(run=run, send_at=now - timedelta(seconds=1)) for _ in range(4)]
    later = DeliveryFactory(run=run, send_at=now + timedelta(seconds=20))

    result = engine.dispatch_due(now=now)

    assert result.batches == [
        ([d.id for d in due[:3]], None),
        ([due[3].id], None),
        ([later.id], later.send_at),
    ]
    assert not Delivery.objects.filter(run=run, enqueued_at__isnull=True).exists()


def test_an_enqueued_delivery_is_not_enqueued_again_by_the_next_tick(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    DeliveryFactory(run=run, send_at=now)
    engine.dispatch_due(now=now)

    assert engine.dispatch_due(now=now + timedelta(seconds=2)).deliveries == 0


def test_a_delivery_beyond_the_horizon_stays_in_the_database(workspace, settings):
    settings.DISPATCH_HORIZON_SECONDS = 30
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    DeliveryFactory(run=run, send_at=now + timedelta(seconds=31))

    assert engine.dispatch_due(now=now).deliveries == 0


def test_deliveries_of_a_paused_campaign_are_held(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    DeliveryFactory(run=run)
    campaign_services.campaign_pause(workspace=workspace, campaign_id=run.campaign_id)

    assert engine.dispatch_due().deliveries == 0


def test_a_delivery_whose_task_was_lost_is_enqueued_again_once_stale(workspace, settings):
    settings.DELIVERY_REENQUEUE_AFTER_SECONDS = 60
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    DeliveryFactory(run=run, send_at=now, enqueued_at=now)

    assert engine.dispatch_due(now=now + timedelta(seconds=59)).deliveries == 0
    assert engine.dispatch_due(now=now + timedelta(seconds=61)).deliveries == 1


def test_a_delivery_moved_to_a_later_send_time_is_enqueued_again_when_due(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    # Enqueued once, then a 4xx answer moved it ten minutes on: its first task has run.
    DeliveryFactory(run=run, send_at=now + timedelta(minutes=10), enqueued_at=now)

    assert engine.dispatch_due(now=now + timedelta(minutes=10)).deliveries == 1


def test_a_long_bulk_queue_holds_back_new_batches(workspace, settings):
    settings.DELIVERY_BULK_QUEUE_MAX_BATCHES = 5
    run = CampaignRunFactory(campaign__workspace=workspace)
    DeliveryFactory(run=run)
    engine._redis().rpush(engine.BULK_QUEUE, *["waiting task"] * 5)

    assert engine.dispatch_due().deliveries == 0


# --- the reaper -----------------------------------------------------------------------------------------


def test_claimed_never_attempted_deliveries_of_a_dead_worker_return_to_the_queue(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    row = DeliveryFactory(run=run, enqueued_at=now, lease_until=now - timedelta(seconds=1))

    assert engine.reap_leases(now=now).requeued == 1
    row.refresh_from_db()
    assert (row.status, row.lease_until, row.enqueued_at, row.possible_duplicate) == (
        "queued",
        None,
        None,
        False,
    )


def test_the_in_flight_delivery_of_a_dead_worker_is_retried_and_flagged(workspace, settings):
    settings.DELIVERY_LEASE_EXPIRED_POLICY = "retry"
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    row = DeliveryFactory(run=run, status=Delivery.Status.SENDING, lease_until=now - timedelta(seconds=1))

    assert engine.reap_leases(now=now).retried == 1
    row.refresh_from_db()
    assert (row.status, row.lease_until, row.possible_duplicate) == ("queued", None, True)


def test_under_the_uncertain_policy_the_in_flight_delivery_ends_uncertain_and_flagged(workspace, settings):
    settings.DELIVERY_LEASE_EXPIRED_POLICY = "uncertain"
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    row = DeliveryFactory(run=run, status=Delivery.Status.SENDING, lease_until=now - timedelta(seconds=1))

    assert engine.reap_leases(now=now).uncertain == 1
    row.refresh_from_db()
    assert (row.status, row.possible_duplicate) == ("uncertain", True)


def test_a_live_lease_is_left_to_its_worker(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    DeliveryFactory(run=run, status=Delivery.Status.SENDING, lease_until=now + timedelta(seconds=30))
    DeliveryFactory(run=run, lease_until=now + timedelta(seconds=30))

    result = engine.reap_leases(now=now)

    assert (result.requeued, result.retried, result.uncertain) == (0, 0, 0)


def test_deliveries_enqueued_before_a_pause_go_again_at_once_on_resume(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    DeliveryFactory(run=run)
    engine.dispatch_due()
    campaign_services.campaign_pause(workspace=workspace, campaign_id=run.campaign_id)
    campaign_services.campaign_resume(workspace=workspace, campaign_id=run.campaign_id)

    assert engine.dispatch_due().deliveries == 1


def test_the_in_flight_delivery_of_a_stopped_run_ends_uncertain_rather_than_retried(workspace, settings):
    settings.DELIVERY_LEASE_EXPIRED_POLICY = "retry"
    run = CampaignRunFactory(campaign__workspace=workspace, status=CampaignRun.Status.CANCELLED)
    now = timezone.now()
    row = DeliveryFactory(run=run, status=Delivery.Status.SENDING, lease_until=now - timedelta(seconds=1))

    assert engine.reap_leases(now=now).uncertain == 1
    row.refresh_from_db()
    assert (row.status, row.possible_duplicate) == ("uncertain", True)


@pytest.mark.django_db(transaction=True)
def test_a_tick_skips_a_row_locked_elsewhere_and_enqueues_the_others(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    locked, *others = [DeliveryFactory(run=run, send_at=now - timedelta(seconds=1)) for _ in range(3)]
    holding, release = threading.Event(), threading.Event()

    def hold_row_lock():
        with transaction.atomic():
            Delivery.objects.select_for_update().get(pk=locked.pk)
            holding.set()
            assert release.wait(timeout=20), "the test never released the row"

    with in_background(hold_row_lock, stop=release.set):
        assert holding.wait(timeout=20), "the other connection did not lock the row"
        with connection.cursor() as cursor:
            # A claim that waited for the lock would fail here instead of hanging the tick.
            cursor.execute("SET lock_timeout = '2s'")
        try:
            result = engine.dispatch_due(now=now)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")

    assert sorted(i for ids, _ in result.batches for i in ids) == sorted(d.id for d in others)
    assert Delivery.objects.get(pk=locked.pk).enqueued_at is None


@pytest.mark.parametrize("policy", ["retry", "uncertain"])
def test_a_dead_batchs_progress_row_settles_its_sending_rows(workspace, settings, policy):
    """A worker killed while handing over the third of a chunk of five marked `sending`."""
    settings.DELIVERY_LEASE_EXPIRED_POLICY = policy
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    lease = now - timedelta(seconds=1)
    rows = [
        DeliveryFactory(run=run, status=Delivery.Status.SENDING, lease_until=lease, attempts=1, message_id=f"<m{i}@x>")
        for i in range(5)
    ]
    SendProgressFactory(lease_until=lease, position=rows[2].id, moved_at=lease - timedelta(seconds=5))

    result = engine.reap_leases(now=now)

    by_id = Delivery.objects.in_bulk([r.id for r in rows])
    after = [by_id[r.id] for r in rows]
    in_flight = "queued" if policy == "retry" else "uncertain"
    assert [d.status for d in after] == ["sent", "sent", in_flight, "queued", "queued"]
    assert [d.possible_duplicate for d in after] == [False, False, True, False, False]
    assert [(d.attempts, d.message_id, d.lease_until) for d in after[3:]] == [(0, "", None)] * 2
    assert after[0].sent_at == lease - timedelta(seconds=5)
    assert (result.settled_sent, result.requeued) == (2, 2)
    sent = Event.objects.filter(type="sent").values_list("delivery_id", "message_id")
    assert sorted(sent) == [(rows[0].id, "<m0@x>"), (rows[1].id, "<m1@x>")]
    assert not SendProgress.objects.exists()


def test_a_dead_batch_that_had_marked_but_not_started_its_chunk_gives_every_row_back(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    now = timezone.now()
    lease = now - timedelta(seconds=1)
    rows = [DeliveryFactory(run=run, status=Delivery.Status.SENDING, lease_until=lease, attempts=1) for _ in range(3)]
    SendProgressFactory(lease_until=lease, position=None)

    result = engine.reap_leases(now=now)

    assert (result.requeued, result.retried, result.uncertain) == (3, 0, 0)
    assert set(Delivery.objects.filter(pk__in=[r.id for r in rows]).values_list("status", "possible_duplicate")) == {
        ("queued", False)
    }
    assert not Event.objects.exists()


def test_a_live_batchs_progress_row_is_left_alone(workspace):
    run = CampaignRunFactory(campaign__workspace=workspace)
    lease = timezone.now() + timedelta(seconds=30)
    row = DeliveryFactory(run=run, status=Delivery.Status.SENDING, lease_until=lease)
    SendProgressFactory(lease_until=lease, position=row.id + 1)

    engine.reap_leases()

    assert Delivery.objects.get(pk=row.pk).status == "sending"
    assert SendProgress.objects.filter(lease_until=lease).exists()
