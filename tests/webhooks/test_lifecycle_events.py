"""Lifecycle events written by the campaign services reach webhook endpoints (the producing side's own tests
are in tests/campaigns)."""

from datetime import UTC, datetime, timedelta

from campaigns.models import CampaignRun
from tests.campaigns.test_policies import launch_and_fan_out, scheduled
from tests.factories import ContactFactory, LabelFactory, SendingDomainFactory, WebhookEndpointFactory
from tests.webhooks.conftest import deliver
from tests.webhooks.test_delivery import verified

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def test_a_missed_run_reaches_a_campaign_webhook_as_campaign_missed(workspace, receiver):
    endpoint = WebhookEndpointFactory(workspace=workspace, url=receiver.url, event_types=["campaign.*"])
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    label = LabelFactory(workspace=workspace, name="members")
    ContactFactory.create_batch(2, workspace=workspace, labels=[label])
    campaign = scheduled(
        workspace, label, now=T0 - timedelta(days=1), scheduled_at=T0.isoformat(), max_lateness_minutes=5
    )
    run = launch_and_fan_out(campaign, now=T0 + timedelta(minutes=6))
    assert run.status == CampaignRun.Status.MISSED

    deliver(endpoint)

    payloads = [verified(endpoint, request) for request in receiver.requests]
    missed = [p for p in payloads if p["type"] == "campaign.missed"]
    assert len(missed) == 1
    assert (missed[0]["data"]["campaign_id"], missed[0]["data"]["run_id"]) == (str(campaign.id), str(run.id))
