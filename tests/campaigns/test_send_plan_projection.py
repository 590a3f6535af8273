"""send-plan's `projected_finish_at` and `warnings` (campaigns.selectors.campaign_send_plan): from the throttles in
force (rows of delivery.models.Throttle, else the environment's defaults) and the queue ahead."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from audience.models import Contact
from campaigns import services as campaign_services
from campaigns.models import Campaign
from delivery.models import Throttle
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    DeliveryFactory,
    LabelFactory,
    SendingDomainFactory,
    SuppressionFactory,
    ThrottleFactory,
)

NOW = datetime(2031, 3, 2, 8, 0, tzinfo=UTC)
AT = datetime(2031, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_env_limits(settings):
    settings.DELIVERY_RATE_PER_WORKSPACE = None
    settings.DELIVERY_RATE_PER_DOMAIN = {}


@pytest.fixture
def members(workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    label = LabelFactory(workspace=workspace, name="members")
    contacts = Contact.objects.bulk_create(
        Contact(workspace=workspace, email=f"m{i}@example.org", first_name="M") for i in range(120)
    )
    Contact.labels.through.objects.bulk_create(
        Contact.labels.through(contact_id=c.id, label_id=label.id) for c in contacts
    )
    return label


def plan(api, workspace, label, **body) -> dict:
    campaign = CampaignFactory(
        workspace=workspace,
        audience={
            "include_labels": [str(label.id)],
            "exclude_labels": [],
            "include_segments": [],
            "exclude_segments": [],
        },
    )
    request = campaign_services.schedule_parse(**({"scheduled_at": AT.isoformat()} | body), now=NOW)
    campaign_services.campaign_schedule(workspace=workspace, campaign_id=campaign.id, request=request, now=NOW)
    with time_machine.travel(NOW, tick=False):
        return api.get(f"/api/v1/campaigns/{campaign.id}/send-plan").json()


def codes(body) -> list[str]:
    return [warning["code"] for warning in body["warnings"]]


def workspace_rate(workspace, rate: float) -> Throttle:
    return ThrottleFactory(workspace=workspace, scope=Throttle.Scope.WORKSPACE, domain="", rate_per_second=rate)


def test_the_finish_is_the_audience_at_the_workspace_rate_after_the_launch(api, workspace, members):
    workspace_rate(workspace, 2)

    body = plan(api, workspace, members)

    assert (body["total"], body["projected_finish_at"], body["warnings"]) == (120, "2031-03-02T09:01:00Z", [])


def test_the_slower_of_the_workspace_and_sending_domain_rates_decides(api, workspace, members):
    workspace_rate(workspace, 20)
    ThrottleFactory(
        workspace=workspace, scope=Throttle.Scope.SENDING_DOMAIN, domain="mail.example.com", rate_per_second=1
    )

    assert plan(api, workspace, members)["projected_finish_at"] == "2031-03-02T09:02:00Z"


def test_the_environment_default_rate_counts_when_no_row_says_more(api, workspace, members, settings):
    settings.DELIVERY_RATE_PER_WORKSPACE = 4

    assert plan(api, workspace, members)["projected_finish_at"] == "2031-03-02T09:00:30Z"


def test_the_queue_ahead_delays_the_finish(api, workspace, members):
    workspace_rate(workspace, 2)
    other = CampaignFactory(workspace=workspace, status=Campaign.Status.SENDING)
    for _ in range(60):
        DeliveryFactory(run__campaign=other, send_at=AT - timedelta(minutes=5))

    assert plan(api, workspace, members)["projected_finish_at"] == "2031-03-02T09:01:30Z"


def test_without_any_limit_the_finish_is_the_last_planned_time(api, workspace, members):
    assert plan(api, workspace, members)["projected_finish_at"] == "2031-03-02T09:00:00Z"


def test_a_throttle_too_slow_for_the_sto_window_is_a_warning(api, workspace, members):
    workspace_rate(workspace, 0.01)  # 120 messages: 12,000 s, past a one-hour window

    body = plan(api, workspace, members, send_time_optimization={"window_hours": 1})

    assert codes(body) == ["throttle_exceeds_sto_window"]


def test_a_throttle_that_runs_into_the_quiet_hours_is_a_warning(api, workspace, members):
    workspace_rate(workspace, 0.01)  # from 09:00 UTC the send would need until 12:20, past 11:00

    body = plan(api, workspace, members, quiet_hours={"start": "11:00", "end": "12:00"})

    assert codes(body) == ["throttle_runs_into_quiet_hours"]
    assert "120 recipients in UTC" in body["warnings"][0]["message"]


def test_suppressed_and_unsubscribed_contacts_of_the_audience_are_a_warning(api, workspace, members):
    ContactFactory(workspace=workspace, labels=[members], status=Contact.Status.UNSUBSCRIBED)
    SuppressionFactory(workspace=workspace, email="m0@example.org")

    body = plan(api, workspace, members)

    assert codes(body) == ["audience_has_suppressed"]
    assert body["warnings"][0]["message"].startswith("2 contacts of the audience")


def test_an_unverified_sending_domain_is_a_warning(api, workspace, members):
    body = plan(api, workspace, members)  # scheduled while verified
    workspace.sending_domains.update(verified=False)
    campaign_id = Campaign.objects.get(workspace=workspace).id

    with time_machine.travel(NOW, tick=False):
        body = api.get(f"/api/v1/campaigns/{campaign_id}/send-plan").json()

    assert codes(body) == ["sending_domain_unverified"]
