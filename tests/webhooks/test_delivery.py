"""Delivery of events to a real local HTTP receiver, checked with the standardwebhooks package's verifier."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from delivery.models import Event
from tests.factories import EventFactory, WebhookEndpointFactory
from tests.receiver import Script
from tests.webhooks.conftest import deliver
from webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db


def verified(endpoint, request) -> dict:
    """The payload, after the independent verifier accepted the signature (it raises otherwise)."""
    return Webhook(endpoint.secret).verify(request.body, request.headers)


def test_an_event_arrives_signed_and_passes_the_standard_webhooks_verifier(endpoint, receiver, workspace):
    event = EventFactory(workspace=workspace, type=Event.Type.SENT)

    assert deliver(endpoint) == 1

    (request,) = receiver.requests
    payload = verified(endpoint, request)
    assert payload["id"] == str(event.id)
    assert payload["type"] == "email.sent"
    assert request.headers["webhook-id"] == f"evt_{event.id}"
    assert request.headers["webhook-signature"].startswith("v1,")


def test_a_tampered_body_fails_the_verifier(endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    deliver(endpoint)
    request = receiver.requests[0]

    with pytest.raises(Exception, match="(?i)signature"):
        Webhook(endpoint.secret).verify(request.body.replace(b"email.sent", b"email.oops"), request.headers)


def test_an_email_event_payload_names_recipient_message_campaign_and_run(endpoint, receiver, workspace):
    event = EventFactory(
        workspace=workspace, type=Event.Type.BOUNCED, campaign_id="2b6a0a3e-54a0-4a51-9a8f-3d7f0c7d6a11",
        run_id="6f1f5b0e-1111-4a51-9a8f-3d7f0c7d6a11", data={"reason": "550 5.1.1 no such user"},
    )
    deliver(endpoint)

    data = verified(endpoint, receiver.requests[0])["data"]
    assert data == {
        "email": event.email, "message_id": event.message_id, "campaign_id": "2b6a0a3e-54a0-4a51-9a8f-3d7f0c7d6a11",
        "run_id": "6f1f5b0e-1111-4a51-9a8f-3d7f0c7d6a11", "reason": "550 5.1.1 no such user",
    }


def test_a_transactional_event_payload_carries_its_batch(endpoint, receiver, workspace):
    EventFactory(workspace=workspace, type=Event.Type.SCHEDULED, batch_id="0e3c8d35-7a5c-4d39-9b62-1f5b3f0f5a77")
    deliver(endpoint)

    payload = verified(endpoint, receiver.requests[0])
    assert payload["type"] == "email.scheduled"
    assert payload["data"]["batch_id"] == "0e3c8d35-7a5c-4d39-9b62-1f5b3f0f5a77"
    assert "campaign_id" not in payload["data"]


def test_a_campaign_finished_payload_carries_the_run_totals(endpoint, receiver, workspace):
    EventFactory(
        workspace=workspace, type=Event.Type.CAMPAIGN_FINISHED, email="", message_id="",
        campaign_id="2b6a0a3e-54a0-4a51-9a8f-3d7f0c7d6a11", run_id="6f1f5b0e-1111-4a51-9a8f-3d7f0c7d6a11",
        data={"status": "sent", "total": 3, "sent": 2, "failed": 1, "skipped": 0},
    )
    deliver(endpoint)

    payload = verified(endpoint, receiver.requests[0])
    assert payload["type"] == "campaign.finished"
    assert payload["data"]["total"] == 3 and payload["data"]["run_id"] == "6f1f5b0e-1111-4a51-9a8f-3d7f0c7d6a11"


def test_only_the_subscribed_types_are_sent(workspace, receiver):
    endpoint = WebhookEndpointFactory(workspace=workspace, url=receiver.url, event_types=["email.opened", "campaign.*"])
    EventFactory(workspace=workspace, type=Event.Type.SENT)
    opened = EventFactory(workspace=workspace, type=Event.Type.OPENED)
    finished = EventFactory(workspace=workspace, type=Event.Type.CAMPAIGN_FINISHED)

    deliver(endpoint)

    assert [json.loads(r.body)["id"] for r in receiver.requests] == [str(opened.id), str(finished.id)]


def test_another_workspaces_events_are_not_sent(endpoint, receiver, other_workspace):
    EventFactory(workspace=other_workspace)

    assert deliver(endpoint) == 0
    assert receiver.requests == []


def test_events_from_before_the_endpoint_existed_are_not_sent(workspace, receiver):
    EventFactory(workspace=workspace)
    endpoint = WebhookEndpointFactory(workspace=workspace, url=receiver.url, cursor=Event.objects.latest("id").id)

    assert deliver(endpoint) == 0


def test_a_500_is_retried_after_about_5_seconds_with_the_same_webhook_id(endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(Script(status=500))
    deliver(endpoint)
    assert deliver(endpoint) == 0  # backing off

    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        assert deliver(endpoint) == 1

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert verified(endpoint, second)["id"] == json.loads(first.body)["id"]
    assert list(WebhookAttempt.objects.order_by("attempted_at").values_list("status_code", "succeeded")) == [
        (500, False), (200, True)
    ]


def test_the_retry_schedule_grows_5s_5min_30min_2h(endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(*[Script(status=503)] * 5)
    delays = []
    now = timezone.now()
    for _ in range(5):
        with time_machine.travel(now, tick=False):
            deliver(endpoint)
        message = WebhookMessage.objects.get()
        delays.append(round((message.next_attempt_at - now).total_seconds()))
        now = message.next_attempt_at + timedelta(seconds=1)

    assert delays == [5, 300, 1800, 7200, 18000]


def test_429_with_retry_after_is_retried_when_the_receiver_asked(endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(Script(status=429, headers={"Retry-After": "120"}))
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        deliver(endpoint)

    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code == 429
    assert attempt.next_retry_at == now + timedelta(seconds=120)
    with time_machine.travel(now + timedelta(seconds=60)):
        assert deliver(endpoint) == 0
    with time_machine.travel(now + timedelta(seconds=121)):
        assert deliver(endpoint) == 1


def test_a_receiver_that_does_not_answer_in_time_is_logged_as_a_timeout_and_retried(
    endpoint, receiver, workspace, settings
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    EventFactory(workspace=workspace)
    receiver.answer(Script(delay=1.5))

    deliver(endpoint)

    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.succeeded) == (None, False)
    assert "Timed out" in attempt.error
    assert WebhookMessage.objects.get().status == WebhookMessage.Status.PENDING
    assert attempt.next_retry_at is not None


def test_410_disables_the_endpoint_at_once_and_keeps_the_message(endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    EventFactory(workspace=workspace)
    receiver.answer(Script(status=410))

    deliver(endpoint)

    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.DISABLED
    assert "410" in endpoint.disabled_reason
    assert len(receiver.requests) == 1
    assert WebhookMessage.objects.filter(status=WebhookMessage.Status.PENDING).count() == 2
    notice = Event.objects.get(type=Event.Type.WEBHOOK_DISABLED)
    assert notice.data["webhook_endpoint_id"] == str(endpoint.pk)


def test_a_long_failure_streak_disables_the_endpoint_with_a_notice(endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(*[Script(status=500)] * 20)
    now = timezone.now()
    while WebhookEndpoint.objects.get(pk=endpoint.pk).status == WebhookEndpoint.Status.ENABLED:
        with time_machine.travel(now, tick=False):
            deliver(endpoint)
        now += timedelta(hours=10, seconds=1)
        assert now < timezone.now() + timedelta(days=4), "never disabled"

    endpoint.refresh_from_db()
    assert "failed since" in endpoint.disabled_reason
    assert Event.objects.filter(type=Event.Type.WEBHOOK_DISABLED, workspace=workspace).count() == 1


def test_a_message_stops_being_retried_after_three_days(endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(*[Script(status=500)] * 30)
    now = timezone.now()
    for _ in range(15):
        with time_machine.travel(now, tick=False):
            deliver(endpoint)
        now += timedelta(hours=10, seconds=1)

    message = WebhookMessage.objects.get()
    assert message.status == WebhookMessage.Status.FAILED
    assert 7 <= message.attempts <= 13
    assert WebhookAttempt.objects.latest("attempted_at").next_retry_at is None


def test_while_a_receiver_fails_only_the_oldest_message_is_tried(endpoint, receiver, workspace):
    for _ in range(5):
        EventFactory(workspace=workspace)
    receiver.answer(Script(status=500))
    deliver(endpoint)
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        receiver.answer(Script(status=500))
        deliver(endpoint)

    assert len(receiver.requests) == 2
    assert {r.headers["webhook-id"] for r in receiver.requests} == {receiver.requests[0].headers["webhook-id"]}


def test_after_a_recovery_the_backlog_flows_again(endpoint, receiver, workspace):
    for _ in range(5):
        EventFactory(workspace=workspace)
    receiver.answer(Script(status=500))
    deliver(endpoint)
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        deliver(endpoint)  # the probe succeeds
        deliver(endpoint)  # then the rest

    assert WebhookMessage.objects.filter(status=WebhookMessage.Status.SUCCEEDED).count() == 5


def test_a_duplicate_delivery_task_sends_nothing(endpoint, receiver, workspace):
    from webhooks import services

    EventFactory(workspace=workspace)
    services.webhook_dispatch_due()
    services.webhook_dispatch_due()
    endpoint.refresh_from_db()
    lease = endpoint.lease_until

    assert services.webhook_endpoint_deliver(endpoint_id=endpoint.pk, lease=lease) == 1
    assert services.webhook_endpoint_deliver(endpoint_id=endpoint.pk, lease=lease) == 0
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed(endpoint, receiver, workspace):
    EventFactory(workspace=workspace)
    receiver.answer(Script(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"}))

    deliver(endpoint)

    assert len(receiver.requests) == 1
    assert WebhookAttempt.objects.get().status_code == 302
    assert WebhookMessage.objects.get().status == WebhookMessage.Status.PENDING
