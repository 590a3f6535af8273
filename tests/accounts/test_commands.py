from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import SendingDomain, Workspace
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


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


def test_add_sending_domain_rejects_an_invalid_domain():
    WorkspaceFactory(name="Acme")
    with pytest.raises(CommandError, match="domain"):
        _run("add_sending_domain", "--workspace", "Acme", "https://example.com/path")
    assert not SendingDomain.objects.exists()
