import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, SendingDomain, Workspace
from accounts.services import api_key_create
from tests.accounts.dns_stub import NXDOMAIN, published_zone, stub_resolver, stub_zone
from tests.factories import SendingDomainFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _changelist_action(admin_client, model: str, action: str, objects) -> list[str]:
    response = admin_client.post(
        f"/admin/accounts/{model}/",
        {"action": action, "_selected_action": [str(obj.pk) for obj in objects]},
        follow=True,
    )
    assert response.status_code == 200
    return _messages(response)


def test_creating_a_key_in_the_admin_shows_the_raw_key_once_and_it_authenticates(admin_client, workspace):
    response = admin_client.post(
        "/admin/accounts/apikey/add/", {"workspace": str(workspace.pk), "name": "ci", "sandbox": "on"}, follow=True
    )
    assert response.status_code == 200
    shown = [re.search(r"(msk_[0-9a-f]{8}_[\w-]+)", text) for text in _messages(response)]
    raws = [match.group(1) for match in shown if match]
    assert len(raws) == 1
    api_key = ApiKey.objects.get(workspace=workspace)
    assert api_key.name == "ci" and api_key.sandbox is True
    assert raws[0] not in admin_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raws[0]}")
    assert client.get("/api/v1/sending-domains").status_code == 200


def test_admin_never_shows_the_key_hash(admin_client, workspace):
    api_key, _ = api_key_create(workspace=workspace, expires_at=timezone.now() + timedelta(days=1))
    for url in (
        "/admin/accounts/apikey/",
        f"/admin/accounts/apikey/{api_key.pk}/change/",
        f"/admin/accounts/apikey/{api_key.pk}/history/",
        f"/admin/accounts/apikey/{api_key.pk}/delete/",
    ):
        response = admin_client.get(url)
        page = response.content.decode()
        assert response.status_code == 200, url
        assert api_key.prefix in page, url
        assert api_key.key_hash not in page, url


def test_admin_add_form_asks_only_workspace_name_sandbox_and_expiry(admin_client):
    form = admin_client.get("/admin/accounts/apikey/add/").context["adminform"].form
    assert sorted(form.fields) == ["expires_at", "name", "sandbox", "workspace"]


def test_a_key_with_an_expiry_is_created_in_the_admin(admin_client, workspace):
    response = admin_client.post(
        "/admin/accounts/apikey/add/",
        {"workspace": str(workspace.pk), "name": "ci", "expires_at_0": "2099-01-31", "expires_at_1": "09:30:00"},
    )
    assert response.status_code == 302
    assert ApiKey.objects.get(workspace=workspace).expires_at == datetime(2099, 1, 31, 9, 30, tzinfo=UTC)


def test_an_expiry_in_the_past_is_a_form_error(admin_client, workspace):
    response = admin_client.post(
        "/admin/accounts/apikey/add/",
        {"workspace": str(workspace.pk), "name": "ci", "expires_at_0": "2000-01-01", "expires_at_1": "00:00:00"},
    )
    assert response.status_code == 200
    assert "expires_at" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_revoke_action_revokes_the_selected_keys(admin_client, workspace):
    first, raw = api_key_create(workspace=workspace)
    second, _ = api_key_create(workspace=workspace)
    _changelist_action(admin_client, "apikey", "revoke_selected", [first])
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.revoked is True and second.revoked is False
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/sending-domains").status_code == 401


def test_workspace_is_created_in_the_admin(admin_client):
    response = admin_client.post("/admin/accounts/workspace/add/", {"name": "Acme", "timezone": "Europe/Paris"})
    assert response.status_code == 302
    assert Workspace.objects.get(name="Acme").timezone == "Europe/Paris"


def test_workspace_with_unknown_timezone_is_a_form_error(admin_client):
    response = admin_client.post("/admin/accounts/workspace/add/", {"name": "Acme", "timezone": "Nowhere/Land"})
    assert response.status_code == 200
    assert "timezone" in response.context["adminform"].form.errors
    assert not Workspace.objects.filter(name="Acme").exists()


def test_sending_domain_is_added_in_the_admin_normalised(admin_client, workspace):
    response = admin_client.post(
        "/admin/accounts/sendingdomain/add/", {"workspace": str(workspace.pk), "domain": "Mail.Example.com"},
        follow=True,
    )
    domain = SendingDomain.objects.get(workspace=workspace)
    assert domain.domain == "mail.example.com"
    assert any(domain.verification_record in text for text in _messages(response))


def test_invalid_or_duplicate_sending_domain_is_a_form_error(admin_client, workspace):
    SendingDomainFactory(workspace=workspace, domain="example.com")
    for value in ("https://example.com", "EXAMPLE.com"):
        response = admin_client.post(
            "/admin/accounts/sendingdomain/add/", {"workspace": str(workspace.pk), "domain": value}
        )
        assert response.status_code == 200
        assert response.context["adminform"].form.errors
    assert SendingDomain.objects.count() == 1


def test_mark_verified_action_is_the_admin_override(admin_client, workspace):
    domain = SendingDomainFactory(workspace=workspace)
    _changelist_action(admin_client, "sendingdomain", "mark_verified", [domain])
    domain.refresh_from_db()
    assert domain.verified is True and domain.verified_by == "admin"


def test_dns_check_action_verifies_or_reports_the_reason(admin_client, workspace, monkeypatch):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    stub_resolver(monkeypatch, error=NXDOMAIN)
    messages = _changelist_action(admin_client, "sendingdomain", "run_dns_check", [domain])
    assert any("does not exist" in text for text in messages)
    stub_zone(monkeypatch, published_zone(domain))
    _changelist_action(admin_client, "sendingdomain", "run_dns_check", [domain])
    domain.refresh_from_db()
    assert domain.verified is True and domain.verified_by == "dns"


def test_rotate_dkim_key_action_adds_a_pending_key(admin_client, workspace):
    domain = SendingDomainFactory(workspace=workspace)
    messages = _changelist_action(admin_client, "sendingdomain", "rotate_dkim_key", [domain])
    assert any("publish the pending record" in text for text in messages)
    assert list(domain.dkim_keys.values_list("status", flat=True)) == ["active", "pending"]


def test_domain_page_shows_the_dns_records(admin_client, workspace):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    page = admin_client.get(f"/admin/accounts/sendingdomain/{domain.pk}/change/").content.decode()
    assert f"{domain.dkim_keys.get().selector}._domainkey.example.com" in page
    assert "v=DKIM1; k=rsa; p=" in page
