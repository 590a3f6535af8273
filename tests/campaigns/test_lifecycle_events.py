"""Every campaign transition leaves its campaign.* event in the one event stream, through the services the
API and the admin call."""

from datetime import UTC, datetime, timedelta

import pytest

from campaigns import services
from campaigns.models import CampaignRun
from delivery.models import Event
from tests.factories import CampaignFactory, ContactFactory, LabelFactory, SendingDomainFactory

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def campaign(workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    label = LabelFactory(workspace=workspace)
    ContactFactory(workspace=workspace, labels=[label])
    audience = {"include_labels": [str(label.id)], "exclude_labels": [], "include_segments": [], "exclude_segments": []}
    return CampaignFactory(workspace=workspace, audience=audience)


def types(campaign) -> list[str]:
    return list(Event.objects.filter(campaign_id=campaign.id).order_by("id").values_list("type", flat=True))


def schedule(workspace, campaign, at: datetime):
    request = services.schedule_parse(schedule_type="scheduled", scheduled_at=at.isoformat(), now=T0)
    return services.campaign_schedule(workspace=workspace, campaign_id=campaign.id, request=request, now=T0)


def test_schedule_reschedule_and_cancel_are_events(workspace, campaign):
    schedule(workspace, campaign, T0 + timedelta(hours=1))
    schedule(workspace, campaign, T0 + timedelta(hours=2))
    services.campaign_cancel_schedule(workspace=workspace, campaign_id=campaign.id)

    assert types(campaign) == ["campaign.scheduled", "campaign.rescheduled", "campaign.cancelled"]
    rescheduled = Event.objects.get(campaign_id=campaign.id, type="campaign.rescheduled")
    assert rescheduled.data["next_run_at"] == "2026-07-01T11:00:00Z"


def test_send_pause_resume_and_stop_are_events_of_the_run(workspace, campaign):
    services.campaign_send_now(workspace=workspace, campaign_id=campaign.id)
    run = CampaignRun.objects.get(campaign=campaign)
    CampaignRun.objects.filter(pk=run.pk).update(status=CampaignRun.Status.SENDING)
    services.campaign_pause(workspace=workspace, campaign_id=campaign.id)
    services.campaign_resume(workspace=workspace, campaign_id=campaign.id)
    services.campaign_stop(workspace=workspace, campaign_id=campaign.id)

    assert types(campaign) == ["campaign.sending", "campaign.paused", "campaign.sending", "campaign.cancelled"]
    assert set(Event.objects.filter(campaign_id=campaign.id).values_list("run_id", flat=True)) == {run.id}


def test_a_finished_run_is_an_event_with_its_totals(workspace, campaign):
    services.campaign_send_now(workspace=workspace, campaign_id=campaign.id)
    run = CampaignRun.objects.get(campaign=campaign)
    CampaignRun.objects.filter(pk=run.pk).update(status=CampaignRun.Status.SENDING, total=3, sent=2, failed=1)
    services.campaign_run_finished(run_id=run.pk)

    finished = Event.objects.get(campaign_id=campaign.id, type="campaign.finished")
    assert (finished.run_id, finished.data["status"]) == (run.id, "sent")
    assert {k: finished.data[k] for k in ("total", "sent", "failed", "skipped")} == {
        "total": 3,
        "sent": 2,
        "failed": 1,
        "skipped": 0,
    }
