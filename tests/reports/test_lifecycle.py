"""A sent campaign becomes `reported` after its first aggregation, and its figures keep updating."""

import pytest

from campaigns.models import Campaign
from delivery.models import Event
from reports import selectors
from reports.services import reports_aggregate
from tests.factories import CampaignRunFactory, EventFactory
from tests.reports.conftest import build_known_campaign

pytestmark = pytest.mark.django_db


def test_a_sent_campaign_is_reported_after_its_first_aggregation(workspace):
    built = build_known_campaign(workspace, status=Campaign.Status.SENT)
    result = reports_aggregate()
    built.campaign.refresh_from_db()
    assert built.campaign.status == Campaign.Status.REPORTED
    assert result.reported == [str(built.campaign.pk)]


def test_reported_writes_one_campaign_reported_event(workspace):
    built = build_known_campaign(workspace)
    reports_aggregate()
    reports_aggregate()
    events = Event.objects.filter(campaign_id=built.campaign.pk, type=Event.Type.CAMPAIGN_REPORTED)
    assert events.count() == 1
    assert events.get().data["status"] == "reported"


def test_a_campaign_still_sending_is_not_reported(workspace):
    built = build_known_campaign(workspace, status=Campaign.Status.SENDING)
    reports_aggregate()
    built.campaign.refresh_from_db()
    assert built.campaign.status == Campaign.Status.SENDING


def test_a_sent_campaign_without_any_event_counted_is_not_reported(workspace):
    run = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace, campaign__status=Campaign.Status.SENT)
    reports_aggregate()
    run.campaign.refresh_from_db()
    assert run.campaign.status == Campaign.Status.SENT


def test_a_reported_campaigns_figures_keep_updating(workspace):
    built = build_known_campaign(workspace)
    reports_aggregate()
    EventFactory(workspace=workspace, type="opened", email="f@example.org", campaign_id=built.campaign.pk,
                 run_id=built.run.pk, data={"machine": False})  # fmt: skip
    reports_aggregate()
    figures = selectors.report_basic(workspace=workspace, campaign_id=built.campaign.pk)
    assert (figures["unique_opens"], figures["open_rate"]) == (5, 1.0)
