"""Scheduling policies and sandbox runs against the real engine: Celery worker and beat subprocesses, real
Redis and PostgreSQL, SMTP to a real sink (docs/decisions/060, 061).

An outage is the engine not running across a due time. Rather than keep it down for the minimum lateness
(a minute) in real time, the test writes the schedule, the launch and the fan-out through the same services
with their `now` set three minutes back, as they would have been written just before the engine went down;
then it starts the engine and watches what it does with what is overdue.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import services
from campaigns.launching import run_fan_out
from campaigns.models import Campaign, CampaignRun
from delivery.models import Delivery, Event
from tests.e2e.conftest import recipients_at, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE = timedelta(minutes=3)


def schedule_before_the_outage(mailing, *, lateness: int | None):
    """Scheduled for one minute into an outage that started three minutes ago."""
    before = timezone.now() - OUTAGE
    request = services.schedule_parse(
        scheduled_at=(before + timedelta(minutes=1)).isoformat(), max_lateness_minutes=lateness, now=before
    )
    return services.campaign_schedule(
        workspace=mailing.workspace, campaign_id=mailing.campaign.id, request=request, now=before
    )


def test_a_run_due_during_an_outage_is_missed_and_nothing_is_sent_late(engine_factory, sink, make_mailing):
    strict = make_mailing(20, name="strict")
    lenient = make_mailing(20, name="lenient")
    schedule_before_the_outage(strict, lateness=1)
    schedule_before_the_outage(lenient, lateness=None)

    engine_factory().start()
    wait_for(lambda: lenient.refresh().status in Campaign.FINISHED, timeout=60, what="the lenient campaign sent")

    assert strict.refresh().status == Campaign.Status.FAILED
    [run] = CampaignRun.objects.filter(campaign=strict.campaign)
    assert (run.status, run.failure_reason[:7]) == (CampaignRun.Status.MISSED, "missed:")
    assert Event.objects.filter(campaign_id=strict.campaign.id, type=Event.Type.CAMPAIGN_MISSED).count() == 1
    assert sorted(recipients_at(sink)) == lenient.emails  # the strict campaign's recipients got nothing


def test_deliveries_queued_before_an_outage_are_missed_once_it_outlasts_the_lateness(
    engine_factory, sink, make_mailing
):
    mailing = make_mailing(30)
    before = timezone.now() - OUTAGE
    request = services.schedule_parse(
        scheduled_at=(before + timedelta(seconds=1)).isoformat(), max_lateness_minutes=1, now=before
    )
    services.campaign_schedule(
        workspace=mailing.workspace, campaign_id=mailing.campaign.id, request=request, now=before
    )
    # The launch and fan-out ran on time, then every worker went down with the deliveries queued.
    run = services.campaign_launch(
        campaign_id=mailing.campaign.id, due_at=mailing.refresh().next_run_at, now=before + timedelta(seconds=1)
    )
    run_fan_out(run_id=run.id, now=before + timedelta(seconds=1))

    engine_factory().start()
    wait_for(lambda: mailing.refresh().status in Campaign.FINISHED, timeout=60, what="the run to be closed")

    run.refresh_from_db()
    assert sink.messages == []
    assert (run.status, run.sent, run.cancelled) == (CampaignRun.Status.SENT, 0, 30)
    errors = set(Delivery.objects.filter(run=run).values_list("status", "error"))
    assert {status for status, _ in errors} == {Delivery.Status.CANCELLED}
    assert all(error.startswith("missed: ") for _, error in errors)


def test_a_sandbox_campaign_runs_through_the_engine_and_the_sink_receives_nothing(engine, sink, make_mailing):
    mailing = make_mailing(40)
    services.campaign_send_now(workspace=mailing.workspace, campaign_id=mailing.campaign.id, sandbox=True)

    wait_for(lambda: mailing.refresh().status in Campaign.FINISHED, timeout=60, what="the sandbox run to finish")

    assert sink.messages == []
    deliveries = Delivery.objects.filter(campaign=mailing.campaign)
    assert set(deliveries.values_list("status", "sandbox")) == {(Delivery.Status.SENT, True)}
    assert deliveries.count() == 40
    events = Event.objects.filter(campaign_id=mailing.campaign.id, type=Event.Type.SENT)
    assert events.count() == 40 and all(event.data.get("sandbox") is True for event in events)
    assert CampaignRun.objects.get(campaign=mailing.campaign).sandbox is True


def test_a_throttle_changed_through_the_api_speeds_up_a_campaign_already_sending(engine_factory, sink, make_mailing):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    engine = engine_factory()
    # Batches short enough for the task limits at a slow rate; the production limits are longer anyway.
    engine.env.update(
        {"DELIVERY_BATCH_SIZE": "20", "CELERY_TASK_TIME_LIMIT": "60", "CELERY_TASK_SOFT_TIME_LIMIT": "50"}
    )
    engine.env.update({"DELIVERY_LEASE_SECONDS": "70"})
    engine.start()
    mailing = make_mailing(150)
    _, key = api_key_create(workspace=mailing.workspace)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    throttle = api.post("/api/v1/throttles", {"scope": "workspace", "rate_per_second": 4}, format="json").json()
    assert api.post(f"/api/v1/campaigns/{mailing.campaign.id}/send").status_code == 200

    wait_for(lambda: len(sink.messages) >= 20, timeout=40, what="the throttled send to be under way")
    changed_at = time.time()
    assert api.patch(f"/api/v1/throttles/{throttle['id']}", {"rate_per_second": 500}, format="json").status_code == 200
    wait_for(lambda: mailing.refresh().status in Campaign.FINISHED, timeout=40, what="the campaign to finish")

    arrived = sorted(sink.handler.arrived_at)
    slow = [t for t in arrived if t < changed_at]
    fast = [t for t in arrived if t > changed_at + 3]  # the change reaches the running batch within seconds
    slow_rate = (len(slow) - 1) / (slow[-1] - slow[0])
    fast_rate = (len(fast) - 1) / (fast[-1] - fast[0]) if len(fast) > 1 else float("inf")
    assert sorted(recipients_at(sink)) == mailing.emails
    assert slow_rate < 6  # about 4 a second (a one-second burst at the start)
    assert fast_rate > 3 * slow_rate
    assert arrived[-1] - changed_at < 15  # at 4 a second the rest would have taken over 30 s
