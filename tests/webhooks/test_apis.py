"""The endpoints API: create (secret once), list, read, update, delete, test, attempts, replay."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from tests.factories import EventFactory, WebhookEndpointFactory
from tests.receiver import Script
from tests.webhooks.conftest import deliver
from webhooks.models import WebhookAttempt, WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_create_answers_201_with_a_whsec_secret(api, receiver):
    response = api.post("/api/v1/webhooks", {"url": receiver.url, "event_types": ["email.*"]}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["status"] == "enabled"
    assert WebhookEndpoint.objects.get(pk=body["id"]).secret == body["secret"]


def test_the_secret_is_shown_only_at_creation(api, endpoint):
    assert "secret" not in api.get(f"/api/v1/webhooks/{endpoint.pk}").json()
    assert "secret" not in api.get("/api/v1/webhooks").json()["results"][0]


def test_an_unknown_event_type_is_a_400_naming_the_field(api, receiver):
    response = api.post("/api/v1/webhooks", {"url": receiver.url, "event_types": ["email.exploded"]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "event_types" in response.json()["error"]["details"]


def test_an_empty_event_type_list_is_a_400(api, receiver):
    response = api.post("/api/v1/webhooks", {"url": receiver.url, "event_types": []}, format="json")

    assert response.status_code == 400


def test_status_and_secret_are_not_writable(api, endpoint):
    response = api.patch(
        f"/api/v1/webhooks/{endpoint.pk}", {"status": "disabled", "secret": "whsec_AAAA"}, format="json"
    )

    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.status == "enabled" and endpoint.secret != "whsec_AAAA"


def test_patch_changes_the_event_types(api, endpoint):
    response = api.patch(f"/api/v1/webhooks/{endpoint.pk}", {"event_types": ["campaign.finished"]}, format="json")

    assert response.json()["event_types"] == ["campaign.finished"]


def test_enabling_a_disabled_endpoint_clears_its_failures(api, endpoint):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        status="disabled", disabled_reason="The receiver answered 410 Gone.", failure_streak=4
    )

    response = api.patch(f"/api/v1/webhooks/{endpoint.pk}", {"enabled": True}, format="json")

    assert response.json()["status"] == "enabled" and response.json()["disabled_reason"] == ""
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 0


def test_delete_answers_204(api, endpoint):
    assert api.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_another_workspaces_endpoint_is_a_404(other_api, endpoint):
    assert other_api.get(f"/api/v1/webhooks/{endpoint.pk}").status_code == 404
    assert other_api.get(f"/api/v1/webhooks/{endpoint.pk}/attempts").status_code == 404
    assert other_api.post(f"/api/v1/webhooks/{endpoint.pk}/test").status_code == 404


def test_test_sends_a_signed_webhook_test_message(api, endpoint, receiver):
    response = api.post(f"/api/v1/webhooks/{endpoint.pk}/test")
    assert response.status_code == 202

    deliver(endpoint)

    payload = Webhook(endpoint.secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert payload["type"] == "webhook.test"
    assert WebhookAttempt.objects.get().trigger == "test"


def test_test_on_a_disabled_endpoint_is_a_409(api, endpoint):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(status="disabled")

    response = api.post(f"/api/v1/webhooks/{endpoint.pk}/test")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "WEBHOOK_ENDPOINT_DISABLED"


def test_attempts_list_the_delivery_log_with_status_duration_and_next_retry(api, endpoint, receiver, workspace):
    event = EventFactory(workspace=workspace)
    receiver.answer(Script(status=500))
    deliver(endpoint)

    (attempt,) = api.get(f"/api/v1/webhooks/{endpoint.pk}/attempts").json()["results"]

    assert attempt["event_id"] == str(event.id) and attempt["event_type"] == "email.sent"
    assert attempt["status_code"] == 500 and attempt["succeeded"] is False
    assert attempt["duration_ms"] >= 0
    assert attempt["next_retry_at"].endswith("Z")
    assert attempt["webhook_id"] == f"evt_{event.id}"


def test_replay_sends_the_same_webhook_id_and_body_again(api, endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    deliver(endpoint)
    attempt = WebhookAttempt.objects.get()

    response = api.post(f"/api/v1/webhooks/{endpoint.pk}/attempts/{attempt.pk}/replay")
    assert response.status_code == 202
    deliver(endpoint)

    first, again = receiver.requests
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body
    assert Webhook(endpoint.secret).verify(again.body, again.headers)
    assert WebhookAttempt.objects.order_by("attempted_at").last().trigger == "replay"


def test_replay_goes_now_even_while_the_endpoint_backs_off(api, endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(Script(status=500))
    deliver(endpoint)
    attempt = WebhookAttempt.objects.get()

    api.post(f"/api/v1/webhooks/{endpoint.pk}/attempts/{attempt.pk}/replay")

    assert deliver(endpoint) == 1


def test_replay_of_a_given_up_message_gets_a_new_retry_window(api, endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(Script(status=500))
    deliver(endpoint)
    attempt = WebhookAttempt.objects.get()
    attempt.message.status = "failed"
    attempt.message.save()

    with time_machine.travel(timezone.now() + timedelta(days=5)):
        api.post(f"/api/v1/webhooks/{endpoint.pk}/attempts/{attempt.pk}/replay")
        assert deliver(endpoint) == 1
    attempt.message.refresh_from_db()
    assert attempt.message.status == "succeeded"


def test_replay_of_an_unknown_attempt_is_a_404(api, endpoint):
    response = api.post(f"/api/v1/webhooks/{endpoint.pk}/attempts/0e3c8d35-7a5c-4d39-9b62-1f5b3f0f5a77/replay")

    assert response.status_code == 404


def test_replay_of_another_endpoints_attempt_is_a_404(api, endpoint, receiver, workspace):
    other = WebhookEndpointFactory(workspace=workspace, url=receiver.url)
    EventFactory(workspace=workspace)
    deliver(other)
    attempt = WebhookAttempt.objects.get()

    response = api.post(f"/api/v1/webhooks/{endpoint.pk}/attempts/{attempt.pk}/replay")

    assert response.status_code == 404
