"""What a newcomer sees after `scripts/run`: the seeded demo in the admin, logged in with the development
login that seed_demo creates (admin / admin). Screenshots go to artifacts/screenshots/."""

from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_demo_campaigns_in_the_admin_after_logging_in_with_the_demo_login(
    page, screenshot, live_server, settings, tmp_path
):
    settings.DEBUG = True  # the development login is made in development only
    settings.DATA_DIR = tmp_path
    call_command("seed_demo", "--contacts", "300", stdout=StringIO())

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("admin")

    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    for name in ("Welcome (a minute after seeding)", "Product tour (send-time optimised)", "Weekly digest"):
        expect(page.locator("#result_list")).to_contain_text(name)
    screenshot("demo-01-campaigns")

    page.click("text=Weekly digest")
    expect(page.locator(".upcoming-runs")).to_be_visible()
    screenshot("demo-02-weekly-digest")

    page.goto(f"{live_server.url}/admin/audience/contact/")
    expect(page.locator("#result_list tbody tr").first).to_be_visible()
    screenshot("demo-03-contacts")
