import base64
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from delivery.models import Event
from transactional.models import TransactionalMessage
from transactional.services import transactional_dispatch_due, transactional_message_send

from .conftest import URL, attachment, body, post, queue_length

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 10, 12, 0, 0, tzinfo=UTC)


def error_of(response) -> dict:
    return response.json()["error"]


def assert_rejected(response, field: str, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    error = error_of(response)
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"], error
    assert not TransactionalMessage.objects.exists()
    return error


# --- accepting ----------------------------------------------------------------------------------------


def test_send_now_answers_202_with_ids_and_queues_on_the_priority_queue(
    api, domain, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api, body(), priority="high")

    assert response.status_code == 202
    data = response.json()
    message = TransactionalMessage.objects.get()
    assert data == {
        "status": 202,
        "message": "Accepted",
        "success": True,
        "message_id": str(message.id),
        "batch_id": str(message.batch_id),
        "message_ids": [str(message.id)],
        "sandbox": False,
    }
    assert (message.status, message.priority, message.to_email) == ("queued", "high", "ana@example.org")
    assert queue_length("tx_high") == 1
    assert queue_length("tx_low") == 0


def test_low_priority_goes_to_the_tx_low_queue(api, domain, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(api, body(), priority="low").status_code == 202

    assert (queue_length("tx_low"), queue_length("tx_high")) == (1, 0)


def test_each_to_address_is_a_message_of_one_batch_carrying_cc_and_bcc(api, domain):
    data = body(
        to=[{"email": "a@example.org"}, {"email": "b@example.org", "name": "Bea"}],
        cc=[{"email": "cc@example.org"}],
        bcc=[{"email": "audit@example.org"}],
    )
    response = post(api, data)

    assert response.status_code == 202
    messages = TransactionalMessage.objects.order_by("to_email")
    assert [m.to_email for m in messages] == ["a@example.org", "b@example.org"]
    assert {m.batch_id for m in messages} == {messages[0].batch_id}
    assert all(m.cc == [{"email": "cc@example.org", "name": ""}] for m in messages)
    assert all(m.bcc == [{"email": "audit@example.org", "name": ""}] for m in messages)
    assert sorted(response.json()["message_ids"]) == sorted(str(m.id) for m in messages)


def test_scheduled_message_waits_with_a_scheduled_event_and_nothing_queued(api, domain):
    with time_machine.travel(NOW, tick=False):
        response = post(api, body(scheduled_at="2026-06-10T16:30:00+02:00"))

    assert response.status_code == 202
    message = TransactionalMessage.objects.get()
    assert message.status == "scheduled"
    assert message.send_at == datetime(2026, 6, 10, 14, 30, tzinfo=UTC)
    event = message.events.get()
    assert event.type == "scheduled"
    assert "2026-06-10T14:30:00Z" in event.data["detail"]
    assert queue_length("tx_high") == 0


def test_sandbox_key_gets_200_and_nothing_is_sent_but_the_log_shows_it(
    sandbox_api, domain, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(sandbox_api, body())

    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["success"], data["sandbox"]) == (200, True, True)
    assert queue_length("tx_high") == 0
    assert mail.outbox == []
    log = sandbox_api.get(f"{URL}/messages").json()["results"]
    assert [(m["message_id"], m["status"], m["sandbox"]) for m in log] == [(data["message_id"], "sent", True)]


def test_scheduled_sandbox_message_ends_sent_without_a_hand_off(sandbox_api, domain):
    with time_machine.travel(NOW, tick=False):
        response = post(sandbox_api, body(scheduled_at="2026-06-10T12:00:05Z"))
        transactional_dispatch_due()
    with time_machine.travel(NOW + timedelta(seconds=5), tick=False):
        outcome = transactional_message_send(message_id=response.json()["message_id"])

    assert outcome == "sent"
    assert mail.outbox == []


def test_scheduled_at_exactly_72_hours_ahead_is_accepted(api, domain):
    with time_machine.travel(NOW, tick=False):
        response = post(api, body(scheduled_at="2026-06-13T12:00:00Z"))

    assert response.status_code == 202


def test_scheduled_at_71_hours_59_minutes_ahead_is_accepted(api, domain):
    with time_machine.travel(NOW, tick=False):
        response = post(api, body(scheduled_at="2026-06-13T11:59:00Z"))

    assert response.status_code == 202
    assert TransactionalMessage.objects.get().status == "scheduled"


# --- validation: each rule, and nothing stored ---------------------------------------------------------


def test_scheduled_at_72_hours_1_minute_ahead_is_400(api, domain):
    with time_machine.travel(NOW, tick=False):
        response = post(api, body(scheduled_at="2026-06-13T12:01:00Z"))

    error = assert_rejected(response, "scheduled_at")
    assert error["details"]["scheduled_at"] == ["scheduled_at cannot be more than 72 hours in the future."]


def test_scheduled_at_one_second_in_the_past_is_400(api, domain):
    with time_machine.travel(NOW, tick=False):
        response = post(api, body(scheduled_at="2026-06-10T11:59:59Z"))

    error = assert_rejected(response, "scheduled_at")
    assert error["details"]["scheduled_at"] == ["scheduled_at must be in the future."]


def test_scheduled_at_now_is_not_in_the_future(api, domain):
    with time_machine.travel(NOW, tick=False):
        response = post(api, body(scheduled_at="2026-06-10T14:00:00+02:00"))

    assert_rejected(response, "scheduled_at")


def test_naive_scheduled_at_is_400(api, domain):
    with time_machine.travel(NOW, tick=False):
        response = post(api, body(scheduled_at="2026-06-10T18:00:00"))

    error = assert_rejected(response, "scheduled_at")
    assert "offset" in error["details"]["scheduled_at"][0]


def test_unparseable_scheduled_at_is_400(api, domain):
    assert_rejected(post(api, body(scheduled_at="tomorrow at nine")), "scheduled_at")


def test_missing_priority_is_400_naming_priority(api, domain):
    error = assert_rejected(post(api, body(), priority=None), "priority")
    assert "priority=high" in error["details"]["priority"][0]


def test_unknown_priority_is_400_naming_priority(api, domain):
    error = assert_rejected(post(api, body(), priority="urgent"), "priority")
    assert error["details"]["priority"] == ['priority must be "high" or "low".']


def test_priority_and_body_errors_are_reported_together(api, domain):
    error = assert_rejected(post(api, body(subject=...), priority=None), "priority")
    assert "subject" in error["details"]


def test_from_on_an_unverified_domain_is_400(api, workspace):
    error = assert_rejected(post(api, body()), "from.email")
    assert "mail.example.com" in error["details"]["from.email"][0]


def test_from_on_another_workspaces_verified_domain_is_400(api, other_workspace):
    from tests.factories import SendingDomainFactory

    SendingDomainFactory(workspace=other_workspace, domain="mail.example.com", verified=True)

    assert_rejected(post(api, body()), "from.email")


def test_missing_to_is_400(api, domain):
    assert_rejected(post(api, body(to=...)), "to")


def test_empty_to_is_400(api, domain):
    assert_rejected(post(api, body(to=[])), "to")


def test_invalid_address_is_named_by_its_path(api, domain):
    data = body(to=[{"email": "ok@example.org"}, {"email": "not-an-address"}])

    assert_rejected(post(api, data), "to[1].email")


def test_invalid_cc_address_is_400(api, domain):
    assert_rejected(post(api, body(cc=[{"email": "bad@@example.org"}])), "cc[0].email")


def test_invalid_reply_to_is_400(api, domain):
    assert_rejected(post(api, body(reply_to={"email": "nobody"})), "reply_to.email")


def test_neither_html_nor_text_is_400(api, domain):
    assert_rejected(post(api, body(html=..., text="")), "html")


def test_missing_subject_is_400(api, domain):
    assert_rejected(post(api, body(subject=...)), "subject")


def test_crlf_in_subject_is_400(api, domain):
    error = assert_rejected(post(api, body(subject="Hi\r\nBcc: victim@example.org")), "subject")
    assert "CR, LF" in error["details"]["subject"][0]


def test_lf_in_a_display_name_is_400(api, domain):
    data = body(**{"from": {"email": "alerts@mail.example.com", "name": "Alerts\nBcc: x@example.org"}})

    assert_rejected(post(api, data), "from.name")


def test_crlf_in_a_custom_header_value_is_400_naming_the_header(api, domain):
    assert_rejected(post(api, body(headers={"X-Ticket": "1\r\nBcc: x@example.org"})), "headers.X-Ticket")


def test_nul_in_a_custom_header_value_is_400(api, domain):
    assert_rejected(post(api, body(headers={"X-Ticket": "1\x00"})), "headers.X-Ticket")


def test_a_header_the_body_sets_cannot_be_given_as_a_custom_header(api, domain):
    error = assert_rejected(post(api, body(headers={"Bcc": "x@example.org"})), "headers.Bcc")
    assert "bcc" in error["details"]["headers.Bcc"][0]


def test_an_invalid_header_name_is_400(api, domain):
    assert_rejected(post(api, body(headers={"X Bad: name": "1"})), "headers.X Bad: name")


def test_nul_in_text_is_400(api, domain):
    assert_rejected(post(api, body(text="a\x00b")), "text")


def test_unknown_field_is_400(api, domain):
    assert_rejected(post(api, body(scheduledAt="2026-06-10T18:00:00Z")), "scheduledAt")


def test_attachment_that_is_not_base64_is_400(api, domain):
    data = body(attachments=[{"filename": "a.txt", "content_type": "text/plain", "content": "not base64!"}])

    assert_rejected(post(api, data), "attachments[0].content")


def test_attachment_filename_with_a_path_is_400(api, domain):
    assert_rejected(
        post(api, body(attachments=[attachment(filename="../etc/passwd")])), "attachments[0].filename"
    )


def test_attachments_over_the_size_limit_are_403_content_rejected_naming_the_limit(api, domain, settings):
    settings.TRANSACTIONAL_MAX_ATTACHMENT_BYTES = 1000
    data = body(attachments=[attachment(b"x" * 600, "a.bin"), attachment(b"y" * 401, "b.bin")])

    response = post(api, data)

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "CONTENT_REJECTED"
    assert "1000 bytes" in error["message"]
    assert error["details"] == {"limit_bytes": 1000, "size_bytes": 1001}
    assert not TransactionalMessage.objects.exists()


def test_attachments_exactly_at_the_size_limit_are_accepted(api, domain, settings):
    settings.TRANSACTIONAL_MAX_ATTACHMENT_BYTES = 1000

    assert post(api, body(attachments=[attachment(b"x" * 1000)])).status_code == 202


def test_too_many_recipients_is_400(api, domain, settings):
    settings.TRANSACTIONAL_MAX_RECIPIENTS = 3
    data = body(to=[{"email": f"p{i}@example.org"} for i in range(2)], bcc=[{"email": "a@example.org"}] * 2)

    assert_rejected(post(api, data), "to")


def test_rejected_requests_store_no_event_and_queue_nothing(api, domain, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(api, body(subject="a\nb"))

    assert response.status_code == 400
    assert (callbacks, Event.objects.count(), queue_length("tx_high")) == ([], 0, 0)


def test_without_a_key_is_401(anon):
    assert anon.post(f"{URL}?priority=high", body(), format="json").status_code == 401


# --- the message log ---------------------------------------------------------------------------------


def test_log_lists_messages_with_their_fields(api, domain):
    message_id = post(api, body(cc=[{"email": "cc@example.org"}], attachments=[attachment()])).json()[
        "message_id"
    ]

    results = api.get(f"{URL}/messages").json()["results"]

    assert len(results) == 1
    row = results[0]
    assert row["message_id"] == message_id
    assert row["from"] == {"email": "alerts@mail.example.com", "name": "Example Alerts"}
    assert row["to"] == {"email": "ana@example.org", "name": "Ana Lopez"}
    assert row["cc"] == [{"email": "cc@example.org", "name": ""}]
    assert row["attachments"] == [{"filename": "receipt.pdf", "content_type": "application/pdf", "size": 16}]
    assert row["status"] == "queued"
    assert row["created_at"].endswith("Z")


def test_log_filters_by_status(api, domain):
    with time_machine.travel(NOW, tick=False):
        post(api, body(scheduled_at="2026-06-11T00:00:00Z"))
        now_id = post(api, body()).json()["message_id"]

        results = api.get(f"{URL}/messages?status=queued").json()["results"]

    assert [r["message_id"] for r in results] == [now_id]


def test_log_filters_by_batch_id(api, domain):
    first = post(api, body(to=[{"email": "a@example.org"}, {"email": "b@example.org"}])).json()
    post(api, body())

    results = api.get(f"{URL}/messages?batch_id={first['batch_id']}").json()["results"]

    assert sorted(r["message_id"] for r in results) == sorted(first["message_ids"])


def test_log_filters_by_customer_reference(api, domain):
    wanted = post(api, body(customer_reference="order-42")).json()["message_id"]
    post(api, body(customer_reference="order-43"))

    results = api.get(f"{URL}/messages?customer_reference=order-42").json()["results"]

    assert [r["message_id"] for r in results] == [wanted]


def test_log_with_an_invalid_filter_value_is_400(api):
    response = api.get(f"{URL}/messages?batch_id=not-a-uuid")

    assert response.status_code == 400
    assert error_of(response)["code"] == "VALIDATION_ERROR"


def test_message_detail_has_its_events_and_bodies(api, domain):
    message_id = post(api, body()).json()["message_id"]

    data = api.get(f"{URL}/messages/{message_id}").json()

    assert data["text"] == "Use this link to reset your password."
    assert [e["kind"] for e in data["events"]] == ["queued"]


def test_another_workspaces_messages_are_not_listed(api, domain, other_api):
    post(api, body())

    assert other_api.get(f"{URL}/messages").json()["count"] == 0


def test_another_workspaces_message_is_404(api, domain, other_api):
    message_id = post(api, body()).json()["message_id"]

    response = other_api.get(f"{URL}/messages/{message_id}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "RESOURCE_NOT_FOUND"


# --- cancel --------------------------------------------------------------------------------------------


def schedule(api, **overrides) -> dict:
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = post(api, body(scheduled_at=at, **overrides))
    assert response.status_code == 202, response.content
    return response.json()


def test_cancel_a_scheduled_message(api, domain):
    message_id = schedule(api)["message_id"]

    response = api.post(f"{URL}/messages/{message_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    message = TransactionalMessage.objects.get()
    assert [e.type for e in message.events.all()] == ["scheduled", "cancelled"]


def test_cancel_after_dispatch_is_409(api, domain):
    message_id = schedule(api)["message_id"]
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1)):
        transactional_dispatch_due()

    response = api.post(f"{URL}/messages/{message_id}/cancel")

    assert response.status_code == 409
    assert error_of(response)["code"] == "MESSAGE_NOT_CANCELLABLE"
    assert TransactionalMessage.objects.get().status == "queued"


def test_cancel_of_an_immediate_message_is_409(api, domain):
    message_id = post(api, body()).json()["message_id"]

    assert api.post(f"{URL}/messages/{message_id}/cancel").status_code == 409


def test_cancel_twice_is_409(api, domain):
    message_id = schedule(api)["message_id"]
    api.post(f"{URL}/messages/{message_id}/cancel")

    assert api.post(f"{URL}/messages/{message_id}/cancel").status_code == 409


def test_cancel_of_another_workspaces_message_is_404(api, domain, other_api):
    message_id = schedule(api)["message_id"]

    assert other_api.post(f"{URL}/messages/{message_id}/cancel").status_code == 404
    assert TransactionalMessage.objects.get().status == "scheduled"


def test_cancel_a_scheduled_batch(api, domain):
    accepted = schedule(api, to=[{"email": "a@example.org"}, {"email": "b@example.org"}])

    response = api.post(f"{URL}/batches/{accepted['batch_id']}/cancel")

    assert response.status_code == 200
    assert sorted((m["message_id"], m["status"]) for m in response.json()["messages"]) == sorted(
        (i, "cancelled") for i in accepted["message_ids"]
    )
    assert Event.objects.filter(type="cancelled").count() == 2


def test_batch_cancel_after_dispatch_is_409_and_cancels_nothing(api, domain):
    accepted = schedule(api, to=[{"email": "a@example.org"}, {"email": "b@example.org"}])
    first = TransactionalMessage.objects.get(id=accepted["message_ids"][0])
    TransactionalMessage.objects.filter(id=first.id).update(status="queued")

    response = api.post(f"{URL}/batches/{accepted['batch_id']}/cancel")

    assert response.status_code == 409
    assert error_of(response)["code"] == "MESSAGE_NOT_CANCELLABLE"
    assert sorted(TransactionalMessage.objects.values_list("status", flat=True)) == ["queued", "scheduled"]


def test_batch_cancel_skips_messages_cancelled_one_by_one(api, domain):
    accepted = schedule(api, to=[{"email": "a@example.org"}, {"email": "b@example.org"}])
    api.post(f"{URL}/messages/{accepted['message_ids'][0]}/cancel")

    response = api.post(f"{URL}/batches/{accepted['batch_id']}/cancel")

    assert response.status_code == 200
    assert set(TransactionalMessage.objects.values_list("status", flat=True)) == {"cancelled"}


def test_batch_cancel_when_all_are_already_cancelled_is_409(api, domain):
    accepted = schedule(api)
    api.post(f"{URL}/batches/{accepted['batch_id']}/cancel")

    assert api.post(f"{URL}/batches/{accepted['batch_id']}/cancel").status_code == 409


def test_batch_cancel_of_another_workspaces_batch_is_404(api, domain, other_api):
    accepted = schedule(api)

    assert other_api.post(f"{URL}/batches/{accepted['batch_id']}/cancel").status_code == 404


def test_attachment_content_is_stored_as_sent(api, domain):
    post(api, body(attachments=[attachment(b"\x00\x01binary")]))

    stored = TransactionalMessage.objects.get().attachments[0]
    assert base64.b64decode(stored["content"]) == b"\x00\x01binary"
