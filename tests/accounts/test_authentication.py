from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from accounts.authentication import ApiKeyAuthentication
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from common import errors

URL = "/api/v1/sending-domains"
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def _client(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def _assert_unauthenticated(response) -> None:
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_no_key_is_401_with_www_authenticate(anon):
    _assert_unauthenticated(anon.get(URL))


@pytest.mark.parametrize("header", ["Bearer", "Bearer   ", "Token abc", "Basic dXNlcjpwYXNz", "msk_abc"])
def test_malformed_authorization_header_is_401(header):
    _assert_unauthenticated(_client(header).get(URL))


def test_unknown_key_is_401(workspace):
    _assert_unauthenticated(_client("Bearer msk_00000000_not-a-real-key").get(URL))


def test_revoked_key_is_401(workspace):
    api_key, raw = api_key_create(workspace=workspace)
    api_key_revoke(workspace=workspace, api_key_id=api_key.pk)
    response = _client(f"Bearer {raw}").get(URL)
    _assert_unauthenticated(response)
    assert "revoked" in response.json()["error"]["message"]


def test_a_key_revoked_after_use_is_refused_on_the_very_next_request(workspace):
    api_key, raw = api_key_create(workspace=workspace)
    client = _client(f"Bearer {raw}")
    assert client.get(URL).status_code == 200

    api_key_revoke(workspace=workspace, api_key_id=api_key.pk)

    _assert_unauthenticated(client.get(URL))


def test_a_key_is_accepted_until_its_expiry(workspace):
    with time_machine.travel(NOW, tick=False):
        _, raw = api_key_create(workspace=workspace, expires_at=NOW + timedelta(days=30))
    with time_machine.travel(NOW + timedelta(days=30) - timedelta(seconds=1), tick=False):
        assert _client(f"Bearer {raw}").get(URL).status_code == 200


def test_an_expired_key_is_401(workspace):
    with time_machine.travel(NOW, tick=False):
        _, raw = api_key_create(workspace=workspace, expires_at=NOW + timedelta(days=30))
    with time_machine.travel(NOW + timedelta(days=30), tick=False):
        response = _client(f"Bearer {raw}").get(URL)

    _assert_unauthenticated(response)
    assert response.json()["error"]["message"] == "The API key expired at 2026-07-10T12:00:00Z."


def test_a_key_without_expiry_never_expires(workspace):
    with time_machine.travel(NOW, tick=False):
        _, raw = api_key_create(workspace=workspace)
    with time_machine.travel(NOW + timedelta(days=3650), tick=False):
        assert _client(f"Bearer {raw}").get(URL).status_code == 200


def test_valid_key_is_accepted_and_records_last_use(workspace):
    api_key, raw = api_key_create(workspace=workspace)
    assert api_key.last_used_at is None
    response = _client(f"Bearer {raw}").get(URL)
    assert response.status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert timezone.now() - api_key.last_used_at < timedelta(seconds=30)


def test_only_the_hash_of_a_key_is_stored(workspace):
    api_key, raw = api_key_create(workspace=workspace)
    stored = ApiKey.objects.filter(pk=api_key.pk).values_list("prefix", "key_hash").get()
    assert raw not in stored
    assert raw.startswith(api_key.prefix + "_")


def test_sandbox_flag_is_on_the_authenticated_key(workspace):
    _, raw = api_key_create(workspace=workspace, sandbox=True)
    request = Request(APIRequestFactory().get(URL, HTTP_AUTHORIZATION=f"Bearer {raw}"))
    principal, api_key = ApiKeyAuthentication().authenticate(request)
    assert api_key.sandbox is True
    assert principal.workspace == workspace


def test_revoking_a_key_of_another_workspace_is_not_found(workspace, other_workspace):
    api_key, _ = api_key_create(workspace=other_workspace)
    with pytest.raises(errors.NotFound):
        api_key_revoke(workspace=workspace, api_key_id=api_key.pk)
    api_key.refresh_from_db()
    assert api_key.revoked is False


def test_the_authenticated_key_carries_its_workspace_without_another_query(workspace):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api_key, raw = api_key_create(workspace=workspace, name="one query")
    request = Request(APIRequestFactory().get(URL, HTTP_AUTHORIZATION=f"Bearer {raw}"))
    with CaptureQueriesContext(connection) as queries:
        _, found = ApiKeyAuthentication().authenticate(request)
        assert (found.pk, found.workspace.pk, found.workspace.name) == (api_key.pk, workspace.pk, workspace.name)
    assert len([q for q in queries.captured_queries if "SELECT" in q["sql"]]) == 1
