from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey, SendingDomain, Workspace
from tests.factories import SendingDomainFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def _run(*args) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()


def test_create_workspace_prints_its_id_last():
    lines = _run("create_workspace", "Acme", "--timezone", "Asia/Jakarta")
    workspace = Workspace.objects.get(name="Acme")
    assert lines[-1] == str(workspace.id)
    assert workspace.timezone == "Asia/Jakarta"


def test_create_workspace_with_unknown_timezone_fails_cleanly():
    with pytest.raises(CommandError, match="timezone"):
        _run("create_workspace", "Acme", "--timezone", "Mars/Olympus")
    assert not Workspace.objects.filter(name="Acme").exists()


def test_create_api_key_prints_a_key_that_authenticates():
    workspace = WorkspaceFactory(name="Acme")
    raw = _run("create_api_key", "--workspace", "Acme")[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/sending-domains").status_code == 200
    assert workspace.api_keys.get().sandbox is False


def test_create_api_key_expires_in_days_sets_the_expiry():
    workspace = WorkspaceFactory(name="Acme")
    with time_machine.travel(NOW, tick=False):
        raw = _run("create_api_key", "--workspace", "Acme", "--expires-in-days", "30")[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert workspace.api_keys.get().expires_at == NOW + timedelta(days=30)
    with time_machine.travel(NOW + timedelta(days=30), tick=False):
        assert client.get("/api/v1/sending-domains").status_code == 401


@pytest.mark.parametrize("days", ["0", "-1"])
def test_create_api_key_refuses_an_expiry_that_is_not_in_the_future(days):
    WorkspaceFactory(name="Acme")
    with pytest.raises(CommandError, match="at least 1"):
        _run("create_api_key", "--workspace", "Acme", "--expires-in-days", days)
    assert not ApiKey.objects.exists()


def test_create_api_key_for_unknown_workspace_fails_cleanly():
    with pytest.raises(CommandError, match="No workspace named 'Nope'"):
        _run("create_api_key", "--workspace", "Nope")


def test_add_sending_domain_prints_txt_record_and_id_last():
    workspace = WorkspaceFactory(name="Acme")
    lines = _run("add_sending_domain", "--workspace", "Acme", "Mail.Example.com")
    domain = SendingDomain.objects.get(workspace=workspace)
    assert lines[-1] == str(domain.id)
    assert domain.domain == "mail.example.com"
    assert domain.verified is False
    assert any(domain.verification_record in line for line in lines)
    assert domain.verification_record.startswith("mailsched-verification=")


def test_add_sending_domain_verified_is_the_admin_override():
    WorkspaceFactory(name="Acme")
    lines = _run("add_sending_domain", "--workspace", "Acme", "example.com", "--verified")
    domain = SendingDomain.objects.get(pk=lines[-1])
    assert domain.verified is True
    assert domain.verified_by == "admin"
    assert domain.verified_at is not None


def test_add_sending_domain_verified_verifies_a_domain_created_through_the_api():
    workspace = WorkspaceFactory(name="Acme")
    existing = SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=False)
    lines = _run("add_sending_domain", "--workspace", "Acme", "Mail.Example.com", "--verified")
    assert lines[-1] == str(existing.id)
    existing.refresh_from_db()
    assert existing.verified is True and existing.verified_by == "admin"
    assert SendingDomain.objects.filter(workspace=workspace).count() == 1


def test_add_sending_domain_rejects_an_invalid_domain():
    WorkspaceFactory(name="Acme")
    with pytest.raises(CommandError, match="domain"):
        _run("add_sending_domain", "--workspace", "Acme", "https://example.com/path")
    assert not SendingDomain.objects.exists()
