"""An operator adds a sending domain in the admin, sees the DNS records to publish, runs the DNS check and
sees each record's status. Screenshots go to artifacts/screenshots/."""

import pytest
from playwright.sync_api import expect

from accounts.models import SendingDomain
from tests.accounts.dns_stub import published_zone, stub_zone
from tests.browser.test_admin_flows import _log_in
from tests.factories import WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_add_a_domain_see_its_dns_records_and_check_them(
    page, live_server, django_user_model, screenshot, monkeypatch
):
    workspace = WorkspaceFactory(name="Acme")
    _log_in(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/accounts/sendingdomain/add/")
    page.select_option("#id_workspace", str(workspace.pk))
    page.fill("#id_domain", "Mail.Example.com")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("DKIM")

    domain = SendingDomain.objects.get(workspace=workspace)
    page.goto(f"{live_server.url}/admin/accounts/sendingdomain/{domain.pk}/change/")
    records = page.locator(".field-dns_records_table table")
    expect(records).to_contain_text(f"{domain.dkim_keys.get().selector}._domainkey.mail.example.com")
    expect(records).to_contain_text("v=DKIM1; k=rsa; p=")
    screenshot("dkim-01-domain-records-pending")

    stub_zone(monkeypatch, published_zone(domain, dmarc=None))
    page.goto(f"{live_server.url}/admin/accounts/sendingdomain/")
    page.check(f"input[name=_selected_action][value='{domain.pk}']")
    page.select_option("select[name=action]", "run_dns_check")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("example.com: verified")
    page.goto(f"{live_server.url}/admin/accounts/sendingdomain/{domain.pk}/change/")
    expect(records).to_contain_text("verified")
    expect(records).to_contain_text("No DMARC record")
    screenshot("dkim-02-domain-records-checked")
    domain.refresh_from_db()
    assert domain.verified is True
