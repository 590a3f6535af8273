import pytest

from tests.factories import WebhookEndpointFactory
from tests.receiver import Receiver
from webhooks import services
from webhooks.models import WebhookEndpoint


@pytest.fixture(autouse=True)
def _settle_at_once(settings):
    # A test runs inside one transaction that stays open, so the watermark could only pass its events by
    # waiting out WEBHOOK_SETTLE_MAX_SECONDS; test_watermark.py checks the real rule with committed rows.
    settings.WEBHOOK_SETTLE_MAX_SECONDS = 0


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def endpoint(workspace, receiver):
    return WebhookEndpointFactory(workspace=workspace, url=receiver.url)


def deliver(endpoint: WebhookEndpoint) -> int:
    """One beat tick, then the delivery task it enqueued, run here: the task is a one-line wrapper of
    webhook_endpoint_deliver with the lease the tick took. Returns the requests sent (0: no task)."""
    services.webhook_dispatch_due()
    services.webhook_dispatch_due()  # PostgreSQL: the first tick only marks where the events end
    endpoint.refresh_from_db()
    if endpoint.lease_until is None:
        return 0
    return services.webhook_endpoint_deliver(endpoint_id=endpoint.pk, lease=endpoint.lease_until)
