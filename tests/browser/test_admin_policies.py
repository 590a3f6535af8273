"""The scheduling policies and throttles as an operator sees them in the admin: the schedule form's policies,
a missed run on the campaign page, and the throttle form. Screenshots go to artifacts/screenshots/."""

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign
from delivery.models import Throttle
from tests.browser.test_admin_flows import _log_in
from tests.factories import CampaignFactory, CampaignRunFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_an_operator_sees_policies_a_missed_run_and_edits_a_throttle(page, live_server, django_user_model, screenshot):
    workspace = WorkspaceFactory(name="Acme")
    campaign = CampaignFactory(workspace=workspace, status=Campaign.Status.FAILED, name="Flash sale")
    CampaignRunFactory(
        campaign=campaign,
        status="missed",
        due_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        failure_reason="missed: could not start until 42 minutes after its due time (max_lateness_minutes is 15)",
    )
    _log_in(page, live_server, django_user_model)

    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    expect(page.locator("body")).to_contain_text("could not start until 42 minutes")
    screenshot("30-admin-missed-run")

    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/schedule/")
    expect(page.locator("body")).to_contain_text("Maximum lateness (minutes)")
    expect(page.locator("body")).to_contain_text("Quiet hours from")
    screenshot("31-admin-schedule-policies")

    page.goto(f"{live_server.url}/admin/delivery/throttle/add/")
    page.select_option("select[name=workspace]", str(workspace.pk))
    page.select_option("select[name=scope]", "sending_domain")
    page.fill("input[name=domain]", "mail.example.com")
    page.fill("input[name=rate_per_second]", "20")
    page.fill("input[name=warmup_started_on]", "2026-12-01")
    page.fill("input[name=warmup_daily_caps]", "500, 1000, 2000, 4000")
    page.click("input[name=_save]")
    expect(page.locator("#result_list")).to_contain_text("mail.example.com")
    screenshot("32-admin-throttle-list")
    assert list(Throttle.objects.values_list("rate_per_second", "warmup_daily_caps")) == [
        (20.0, [500, 1000, 2000, 4000])
    ]
