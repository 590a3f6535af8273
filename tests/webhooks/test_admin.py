"""The admin's endpoint page (recent attempts, status codes), the disabled notice and the replay action."""

import pytest

from tests.factories import EventFactory
from tests.receiver import Script
from tests.webhooks.conftest import deliver
from webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("op", "op@example.com", "pw"))
    return client


def test_the_endpoint_page_shows_its_recent_attempts_and_status_codes(operator, endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(Script(status=503))
    deliver(endpoint)

    page = operator.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()

    assert "503" in page and "email.sent" in page and WebhookAttempt.objects.get().message.webhook_id in page


def test_the_endpoint_list_warns_of_a_disabled_endpoint(operator, endpoint):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        status="disabled", disabled_reason="The receiver answered 410 Gone."
    )

    page = operator.get("/admin/webhooks/webhookendpoint/").content.decode()

    assert "webhook.disabled" in page and "410 Gone" in page


def test_the_replay_action_queues_the_attempts_message_again(operator, endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    deliver(endpoint)
    attempt = WebhookAttempt.objects.get()

    response = operator.post(
        "/admin/webhooks/webhookattempt/", {"action": "replay", "_selected_action": [str(attempt.pk)]}, follow=True
    )

    assert "queued again" in response.content.decode()
    message = WebhookMessage.objects.get()
    assert (message.status, message.next_trigger) == ("pending", "replay")
    deliver(endpoint)
    assert len(receiver.requests) == 2
