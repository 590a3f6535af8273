"""The operator's flows in the campaign admin, in a real browser against a live server: schedule with the
form, cancel the schedule, duplicate. Screenshots of each step go to artifacts/screenshots/."""

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    LabelFactory,
    SendingDomainFactory,
    WorkspaceFactory,
)

# About 12 s: a browser start and a dozen page loads.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def ready_campaign():
    workspace = WorkspaceFactory(name="Acme")
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    label = LabelFactory(workspace=workspace, name="customers")
    ContactFactory(workspace=workspace, labels=[label])
    return CampaignFactory(
        workspace=workspace,
        name="Spring launch",
        from_email="news@mail.example.com",
        audience={
            "include_labels": [str(label.id)],
            "exclude_labels": [],
            "include_segments": [],
            "exclude_segments": [],
        },
    )


def _log_in(page, live_server, django_user_model):
    django_user_model.objects.create_superuser("operator", "operator@example.com", "correct horse")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct horse")
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("operator")


def test_schedule_cancel_and_duplicate_in_the_admin(
    page, screenshot, live_server, django_user_model, ready_campaign
):
    _log_in(page, live_server, django_user_model)
    change_url = f"{live_server.url}/admin/campaigns/campaign/{ready_campaign.pk}/change/"
    page.goto(change_url)
    expect(page.locator(".readiness")).to_have_text("Ready to send")
    screenshot("01-draft-change-page")

    # Schedule through the form: a wall-clock time in New York (EDT, UTC-4).
    page.click("a[data-action=schedule]")
    page.fill("#id_date", "2030-07-01")
    page.fill("#id_time", "09:00")
    page.select_option("#id_timezone", "America/New_York")
    screenshot("02-schedule-form")
    page.click("input[name=_schedule]")
    expect(page.locator(".field-status_badge .campaign-status")).to_have_attribute("data-status", "scheduled")
    expect(page.locator(".messagelist")).to_contain_text(
        "Scheduled: once at 2030-07-01 13:00Z (2030-07-01 09:00 America/New_York)"
    )
    expect(page.locator(".upcoming-runs")).to_contain_text("2030-07-01 13:00Z")
    expect(page.locator(".field-next_run_at")).to_contain_text("2030")
    screenshot("03-scheduled")
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == Campaign.Status.SCHEDULED

    page.click("button[data-action=cancel-schedule]")
    expect(page.locator(".field-status_badge .campaign-status")).to_have_attribute("data-status", "draft")
    expect(page.locator(".upcoming-runs")).to_have_count(0)
    screenshot("04-schedule-cancelled")
    ready_campaign.refresh_from_db()
    assert (ready_campaign.status, ready_campaign.next_run_at) == (Campaign.Status.DRAFT, None)

    page.click("button[data-action=duplicate]")
    expect(page.locator(".messagelist")).to_contain_text("Duplicated as “Copy of Spring launch”.")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    row = page.locator("#result_list tbody tr", has_text="Copy of Spring launch")
    expect(row).to_have_count(1)
    expect(row.locator(".campaign-status")).to_have_attribute("data-status", "draft")
    screenshot("05-duplicated-in-changelist")
