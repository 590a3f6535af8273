import base64

import pytest
import redis
from django.conf import settings as django_settings

from tests.factories import SendingDomainFactory

URL = "/api/v1/transactional"
FROM = "alerts@mail.example.com"


@pytest.fixture
def domain(workspace):
    return SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)


def body(**overrides) -> dict:
    data = {
        "from": {"email": FROM, "name": "Example Alerts"},
        "to": [{"email": "ana@example.org", "name": "Ana Lopez"}],
        "subject": "Reset your password",
        "html": "<p>Use this link to reset your password.</p>",
        "text": "Use this link to reset your password.",
        "customer_reference": "reset-1",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not ...}


def attachment(content: bytes = b"%PDF-1.4 receipt", filename: str = "receipt.pdf") -> dict:
    return {
        "filename": filename,
        "content_type": "application/pdf",
        "content": base64.b64encode(content).decode(),
    }


def post(client, data: dict, priority: str | None = "high"):
    url = URL if priority is None else f"{URL}?priority={priority}"
    return client.post(url, data, format="json")


def queue_length(queue: str) -> int:
    """Tasks waiting on a Celery queue in Redis, over all its priority lists (kombu keeps each priority
    step as its own list: "bulk", "bulk\x06\x166", ...; send batches use priority 6)."""
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    return sum(client.llen(queue + suffix) for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169"))


def purge_queues() -> None:
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    for key in client.scan_iter("*"):
        name = key.decode(errors="replace")
        if name.split("\x06")[0] in {"tx_high", "tx_low", "bulk", "default"} or name.startswith("unacked"):
            client.delete(key)


@pytest.fixture(autouse=True)
def _empty_queues():
    # Earlier tests' tasks must not count in this test's queue lengths.
    purge_queues()
    yield
