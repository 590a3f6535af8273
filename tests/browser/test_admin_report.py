"""A campaign's report page as an operator sees it: reached from the campaign page, figures, the link table
and the opens-by-hour chart drawn on the server. Screenshot: artifacts/screenshots/30-admin-campaign-report.png."""

import pytest
from playwright.sync_api import expect

from reports.services import reports_aggregate
from tests.browser.test_admin_flows import _log_in
from tests.factories import WorkspaceFactory
from tests.reports.conftest import URL1, build_known_campaign

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_report_page_shows_figures_links_and_the_opens_chart(page, live_server, django_user_model, screenshot):
    built = build_known_campaign(WorkspaceFactory(timezone="America/New_York"))
    built.campaign.name = "Autumn sale"
    built.campaign.save()
    reports_aggregate()

    _log_in(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    expect(page.locator("td.field-open_rate").first).to_have_text("80.0%")
    expect(page.locator("td.field-click_rate").first).to_have_text("60.0%")
    page.set_viewport_size({"width": 1700, "height": 700})  # the list is wider than 1280 px with the filters
    screenshot("31-admin-campaign-list-rates")
    page.set_viewport_size({"width": 1280, "height": 1000})

    page.goto(f"{live_server.url}/admin/campaigns/campaign/{built.campaign.pk}/change/")
    page.click("a[data-action=report]")
    expect(page.locator("h1")).to_have_text("Report: Autumn sale")
    expect(page.locator("[data-figure=open_rate] .value")).to_have_text("80%")
    expect(page.locator("[data-figure=machine_opens] .value")).to_have_text("2")
    expect(page.locator(".report-links tbody tr").first).to_contain_text(URL1)
    expect(page.locator("svg.opens-by-hour rect.bar")).to_have_count(24)
    expect(page.locator("svg.opens-by-hour rect.bar[data-hour='9']")).to_have_attribute("data-opens", "2")
    assert page.locator("svg.opens-by-hour rect.bar[data-hour='9']").bounding_box()["height"] > 100
    screenshot("30-admin-campaign-report")
