"""An operator's day in the admin, in Debian's Chromium against a live server and the real engine (Celery
worker, bulk worker and beat subprocesses, Redis, an SMTP sink): log in, create a campaign from a template,
preview it for a contact, schedule it with a recurring rule, find it on the home page's timeline, send
another now, pause and resume it, and watch its progress bar reach 100%. Each page is saved to
artifacts/screenshots/ (docs/screenshots/ keeps three of them for the README)."""

import time

import pytest
from playwright.sync_api import expect

from audience.models import Contact
from campaigns.models import Campaign
from tests.e2e import conftest as e2e
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    LabelFactory,
    SendingDomainFactory,
    TemplateFactory,
    WorkspaceFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The end-to-end tests' real engine and its SMTP sink (a slow one on demand), for this module's tests.
engine_factory = e2e.engine_factory
sink = e2e.sink
wait_for = e2e.wait_for

RECIPIENTS = 40


@pytest.fixture
def acme():
    workspace = WorkspaceFactory(name="Acme", timezone="Asia/Jakarta")
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    customers = LabelFactory(workspace=workspace, name="customers")
    ContactFactory(workspace=workspace, labels=[customers], email="ann@example.org", first_name="Ann")
    ContactFactory(workspace=workspace, labels=[customers], email="bob@example.org", first_name="Bob")
    TemplateFactory(
        workspace=workspace,
        name="Welcome",
        subject="Welcome, {{ first_name }}",
        html="<h1>Welcome, {{ first_name }}</h1><p>Your first week with Acme.</p>",
        text="Welcome, {{ first_name }}",
    )
    return workspace


@pytest.fixture
def flash_sale(acme):
    everyone = LabelFactory(workspace=acme, name="everyone")
    made = Contact.objects.bulk_create(
        Contact(workspace=acme, email=f"buyer{i}@example.org", first_name=f"Buyer{i}") for i in range(RECIPIENTS)
    )
    Contact.labels.through.objects.bulk_create(
        Contact.labels.through(contact_id=c.id, label_id=everyone.id) for c in made
    )
    return CampaignFactory(
        workspace=acme,
        name="Flash sale",
        subject="48 hours only",
        tracking={"opens": False, "clicks": False},
        audience={
            "include_labels": [str(everyone.pk)],
            "exclude_labels": [],
            "include_segments": [],
            "exclude_segments": [],
        },
    )


def _log_in_as_operator(page, live_server, django_user_model):
    from django.contrib.auth.models import Permission

    operator = django_user_model.objects.create_user("olga", "olga@example.com", "correct horse", is_staff=True)
    operator.user_permissions.set(Permission.objects.all())  # everything but superuser
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "correct horse")
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("olga")


def _percent(page) -> int:
    return int(page.locator(".field-progress_detail .ms-progress").get_attribute("data-percent"))


def _reload_until(page, condition, *, timeout: float, what: str):
    """The page shows the database as it was when it loaded: reload until it shows `condition`."""
    deadline = time.monotonic() + timeout
    while True:
        page.reload()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        page.wait_for_timeout(500)


def test_an_operators_day(page, screenshot, live_server, django_user_model, acme, flash_sale, engine_factory, sink):
    engine = engine_factory()
    engine.env["DELIVERY_BATCH_SIZE"] = "5"  # small batches, so a pause lands between two of them
    sink.handler.delay = 0.15  # a slow mail server: about 7 messages a second
    engine.start()

    _log_in_as_operator(page, live_server, django_user_model)
    expect(page.locator("#ms-engine")).to_contain_text("bulk")
    expect(page.locator("#content-related")).not_to_contain_text("Periodic tasks")  # System: superusers only
    screenshot("30-home")

    # Create a campaign from a template, for the "customers" label.
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    page.select_option("#id_workspace", label="Acme")
    page.fill("#id_name", "Welcome series")
    page.select_option("#id_template", label="Welcome")
    page.fill("#id_from_email", "hello@mail.example.com")
    page.select_option("#id_include_labels", label="Acme: customers")
    screenshot("31-add-campaign")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator(".readiness")).to_have_text("Ready to send")
    expect(page.locator(".recipient-count")).to_have_text("2 sendable recipients")
    # The count follows the choice before it is saved (the preview below leaves the page unsaved).
    page.select_option("#id_include_labels", label=["customers", "everyone"])
    expect(page.locator(".recipient-count")).to_have_text(f"{RECIPIENTS + 2} sendable recipients (not saved yet)")

    # Preview it for Ann: the template rendered for her, in the sandboxed frame.
    page.select_option("#ms-preview-contact", label="ann@example.org (Ann)")
    page.click("#preview button[type=submit]")
    expect(page.locator(".preview-subject")).to_have_text("Welcome, Ann")
    expect(page.frame_locator("iframe.preview-html").locator("h1")).to_have_text("Welcome, Ann")
    assert page.locator("iframe.preview-html").get_attribute("sandbox") == ""
    page.locator("#preview").scroll_into_view_if_needed()
    screenshot("32-campaign-preview")

    # Schedule it every weekday at 09:00 in Jakarta; the form echoes the next five runs before saving.
    page.click("a[data-action=schedule]")
    page.check("input[name=schedule_type][value=recurring]")
    page.select_option("#id_frequency", "weekly")
    for day in ("1", "2", "3", "4", "5"):
        page.check(f"input[name=days_of_week][value='{day}']")
    page.fill("#id_time", "09:00")
    page.fill("#ms-zone-filter", "jakarta")
    expect(page.locator("#id_timezone")).to_have_value("Asia/Jakarta")
    runs = page.locator("#ms-schedule-echo .ms-runs li")
    expect(runs).to_have_count(5)
    expect(runs.first).to_contain_text("09:00 Asia/Jakarta = 02:00 UTC")
    screenshot("33-schedule-recurring")
    page.click("input[name=_schedule]")
    expect(page.locator(".field-status_badge .campaign-status")).to_have_attribute("data-status", "scheduled")
    expect(page.locator(".upcoming-runs li")).to_have_count(5)

    # The home page's timeline has its runs, in the operator's zone, with the recipient count.
    page.goto(f"{live_server.url}/admin/?tz=Asia/Jakarta")
    rows = page.locator("#ms-timeline .ms-timeline-row", has_text="Welcome series")
    expect(rows.first).to_contain_text("09:00")
    expect(rows.first.locator(".ms-recipients")).to_have_text("2")
    assert rows.count() >= 4  # at least four weekdays in any seven days
    screenshot("34-home-timeline")

    # Send another now, pause it mid-send, resume it, and watch the bar reach 100%.
    engine.wait_until_ready("default", "bulk")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{flash_sale.pk}/change/")
    page.click("button[data-action=send-now]")
    expect(page.locator(".messagelist")).to_contain_text("Sending started.")
    _reload_until(page, lambda: 0 < _percent(page) < 100, timeout=60, what="the send to be under way")
    page.click("button[data-action=pause]")
    expect(page.locator(".field-status_badge .campaign-status")).to_have_attribute("data-status", "paused")
    wait_for(lambda: _quiet(sink), timeout=20, what="the batch in flight to finish")
    held = len(sink.messages)
    page.reload()
    assert _percent(page) < 100
    screenshot("35-campaign-paused")
    page.goto(f"{live_server.url}/admin/")
    expect(page.locator("#ms-problems")).to_contain_text("Paused: Flash sale")
    expect(page.locator("#ms-sending")).to_contain_text("paused")
    screenshot("36-home-paused")
    assert len(sink.messages) == held  # nothing moved while paused

    page.goto(f"{live_server.url}/admin/campaigns/campaign/{flash_sale.pk}/change/")
    page.click("button[data-action=resume]")
    expect(page.locator(".messagelist")).to_contain_text("Resumed.")
    page.goto(f"{live_server.url}/admin/")
    expect(page.locator("#ms-sending .ms-progress")).to_have_count(1)
    screenshot("37-home-sending")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{flash_sale.pk}/change/")
    _reload_until(page, lambda: _percent(page) == 100, timeout=90, what="the progress bar to reach 100%")
    progress = page.locator(".field-progress_detail")
    expect(progress).to_contain_text(f"{RECIPIENTS} sent, 0 failed, 0 cancelled, 0 pending")
    screenshot("38-campaign-sent")
    wait_for(lambda: _status(flash_sale) in Campaign.FINISHED, timeout=30, what="the run to close")
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted(
        f"buyer{i}@example.org" for i in range(RECIPIENTS)
    )


def _quiet(smtp, *, seconds: float = 1.0) -> bool:
    count = len(smtp.messages)
    time.sleep(seconds)  # waiting on other processes (the bulk worker), not on our own clock
    return len(smtp.messages) == count


def _status(campaign) -> str:
    campaign.refresh_from_db()
    return campaign.status


def test_the_pages_fit_a_phone_and_the_keyboard(browser, live_server, django_user_model, acme, flash_sale):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    _log_in_as_operator(page, live_server, django_user_model)
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, url in (
        ("40-phone-home", "/admin/"),
        ("41-phone-campaign", f"/admin/campaigns/campaign/{flash_sale.pk}/change/"),
        ("42-phone-schedule", f"/admin/campaigns/campaign/{flash_sale.pk}/schedule/"),
    ):
        page.goto(live_server.url + url)
        if name == "41-phone-campaign":
            expect(page.frame_locator("iframe.preview-html").locator("p")).to_have_text("Hello Jane")
            page.locator("#preview").scroll_into_view_if_needed()  # Chromium paints a frame once it is seen
        # Nothing wider than the screen: the page does not scroll sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, name
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    # Keyboard only: Tab from the top of the home page reaches the zone chooser, and Enter applies it.
    page.goto(f"{live_server.url}/admin/")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "ms-tz":
            break
    assert page.evaluate("document.activeElement.id") == "ms-tz"
    context.close()
