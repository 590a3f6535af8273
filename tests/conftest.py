import pytest
from rest_framework.test import APIClient

from accounts.services import api_key_create
from common.smtp_sink import SmtpSink
from tests.factories import WorkspaceFactory


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


@pytest.fixture
def other_workspace(db):
    return WorkspaceFactory()


def _client_for(workspace, sandbox: bool = False) -> APIClient:
    _, raw = api_key_create(workspace=workspace, sandbox=sandbox)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.workspace = workspace
    return client


@pytest.fixture
def api(workspace) -> APIClient:
    """An API client authenticated with a fresh key of `workspace`."""
    return _client_for(workspace)


@pytest.fixture
def other_api(other_workspace) -> APIClient:
    return _client_for(other_workspace)


@pytest.fixture
def sandbox_api(workspace) -> APIClient:
    return _client_for(workspace, sandbox=True)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters live in Redis; each test starts with none.
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def sink(settings):
    """A real SMTP server, and Django's SMTP backend pointed at it (for delivery and transactional tests)."""
    with SmtpSink() as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = smtp.host
        settings.EMAIL_PORT = smtp.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        yield smtp
