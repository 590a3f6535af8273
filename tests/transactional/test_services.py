from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from accounts.models import Workspace
from transactional.models import TransactionalMessage
from transactional.services import (
    transactional_dispatch_due,
    transactional_message_send,
    transactional_send,
)

from .conftest import FROM, attachment, queue_length

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 10, 12, 0, 0, tzinfo=UTC)
TO = "ana@example.org"


def accept(workspace: Workspace, **overrides):
    data = {
        "workspace": workspace,
        "priority": "high",
        "sender": {"email": FROM, "name": "Alerts"},
        "to": [{"email": TO, "name": "Ana"}],
        "subject": "Reset your password",
        "text": "Use this link.",
    }
    data.update(overrides)
    return transactional_send(**data)


def only_message() -> TransactionalMessage:
    return TransactionalMessage.objects.get()


# --- dispatcher ----------------------------------------------------------------------------------------


def test_dispatcher_queues_scheduled_messages_due_within_the_horizon(workspace, domain, settings):
    settings.TRANSACTIONAL_DISPATCH_HORIZON_SECONDS = 10
    with time_machine.travel(NOW, tick=False):
        soon = accept(workspace, scheduled_at="2026-06-10T12:00:08Z").message_ids[0]
        later = accept(workspace, scheduled_at="2026-06-10T12:00:30Z").message_ids[0]
        result = transactional_dispatch_due()

    assert result.scheduled_queued == 1
    assert TransactionalMessage.objects.get(id=soon).status == "queued"
    assert TransactionalMessage.objects.get(id=later).status == "scheduled"
    assert [e.type for e in TransactionalMessage.objects.get(id=soon).events.all()] == ["scheduled", "queued"]


def test_dispatcher_enqueues_on_the_priority_queue_after_commit(
    workspace, domain, django_capture_on_commit_callbacks
):
    with time_machine.travel(NOW, tick=False):
        accept(workspace, priority="low", scheduled_at="2026-06-10T12:00:01Z")
        with django_capture_on_commit_callbacks(execute=True):
            transactional_dispatch_due()

    assert (queue_length("tx_low"), queue_length("tx_high")) == (1, 0)


def test_dispatcher_catches_up_on_messages_due_while_it_was_down(workspace, domain):
    with time_machine.travel(NOW, tick=False):
        accept(workspace, scheduled_at="2026-06-10T13:00:00Z")
    with time_machine.travel(NOW + timedelta(hours=5), tick=False):
        transactional_dispatch_due()

    assert only_message().status == "queued"


def test_dispatcher_leaves_cancelled_messages_alone(workspace, domain):
    from transactional.services import transactional_message_cancel

    with time_machine.travel(NOW, tick=False):
        message_id = accept(workspace, scheduled_at="2026-06-10T12:00:01Z").message_ids[0]
        transactional_message_cancel(workspace=workspace, message_id=message_id)
        result = transactional_dispatch_due()

    assert result.scheduled_queued == 0
    assert only_message().status == "cancelled"


def test_dispatcher_reenqueues_a_queued_message_whose_task_was_lost(workspace, domain, settings):
    settings.TRANSACTIONAL_REENQUEUE_AFTER_SECONDS = 60
    with time_machine.travel(NOW, tick=False):
        accept(workspace)
        assert transactional_dispatch_due().requeued == 0
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        assert transactional_dispatch_due().requeued == 1


# --- send ------------------------------------------------------------------------------------------------


def test_send_hands_off_once_even_when_the_task_runs_twice(workspace, domain):
    message_id = accept(workspace).message_ids[0]

    first = transactional_message_send(message_id=message_id)
    second = transactional_message_send(message_id=message_id)

    assert (first, second) == ("sent", "")
    assert len(mail.outbox) == 1
    message = only_message()
    assert (message.status, message.attempts) == ("sent", 1)
    assert [e.type for e in message.events.all()] == ["queued", "sent"]


def test_sent_message_carries_cc_bcc_reply_to_headers_attachment_and_message_id(workspace, domain):
    message_id = accept(
        workspace,
        cc=[{"email": "cc@example.org", "name": "Cc Person"}],
        bcc=[{"email": "audit@example.org", "name": ""}],
        reply_to={"email": "help@example.org", "name": "Help"},
        headers={"X-Ticket": "T-1"},
        html="<p>Use this link.</p>",
        attachments=[{**attachment(), "size": 16}],
    ).message_ids[0]

    transactional_message_send(message_id=message_id)

    sent = mail.outbox[0]
    assert sent.to == ["Ana <ana@example.org>"]
    assert sent.cc == ["Cc Person <cc@example.org>"]
    assert sent.bcc == ["audit@example.org"]
    assert sent.reply_to == ["Help <help@example.org>"]
    assert sent.extra_headers["X-Ticket"] == "T-1"
    assert sent.extra_headers["Message-ID"] == only_message().smtp_message_id
    assert sent.attachments[0][0] == "receipt.pdf"
    assert sent.alternatives[0][1] == "text/html"


def test_a_task_that_runs_before_the_message_is_due_sends_nothing(workspace, domain):
    with time_machine.travel(NOW, tick=False):
        message_id = accept(workspace, scheduled_at="2026-06-10T12:00:08Z").message_ids[0]
        transactional_dispatch_due()
        outcome = transactional_message_send(message_id=message_id)

    assert outcome == ""
    assert mail.outbox == []
    assert only_message().status == "queued"


def test_temporary_refusal_retries_with_backoff_then_sends_exactly_once(workspace, domain, sink, settings):
    settings.TRANSACTIONAL_RETRY_BASE_SECONDS = 30
    sink.handler.reject[TO] = "451 4.7.1 Try again later"
    with time_machine.travel(NOW, tick=False):
        message_id = accept(workspace).message_ids[0]
        first = transactional_message_send(message_id=message_id)
    message = only_message()
    assert (first, message.status, message.attempts) == ("queued", "queued", 1)
    assert message.send_at == NOW + timedelta(seconds=30)
    assert "451" in message.error
    sink.handler.reject.clear()

    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        assert transactional_dispatch_due().requeued == 1
        second = transactional_message_send(message_id=message_id)
        redelivered = transactional_message_send(message_id=message_id)

    assert (second, redelivered) == ("sent", "")
    assert [m.rcpt_tos for m in sink.messages] == [[TO]]
    assert only_message().attempts == 2


def test_backoff_doubles_with_each_temporary_refusal(workspace, domain, sink, settings):
    settings.TRANSACTIONAL_RETRY_BASE_SECONDS = 30
    sink.handler.reject[TO] = "451 4.7.1 Try again later"
    with time_machine.travel(NOW, tick=False):
        message_id = accept(workspace).message_ids[0]
        transactional_message_send(message_id=message_id)
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        transactional_message_send(message_id=message_id)

    assert only_message().send_at == NOW + timedelta(seconds=30 + 60)


def test_permanent_refusal_bounces(workspace, domain, sink):
    sink.handler.reject[TO] = "550 5.1.1 No such user"
    message_id = accept(workspace).message_ids[0]

    outcome = transactional_message_send(message_id=message_id)

    message = only_message()
    assert (outcome, message.status) == ("bounced", "bounced")
    assert "550" in message.error
    assert message.events.last().type == "bounced"


def test_temporary_refusals_end_failed_after_the_attempt_limit(workspace, domain, sink, settings):
    settings.TRANSACTIONAL_MAX_ATTEMPTS = 1
    sink.handler.reject[TO] = "451 4.7.1 Try again later"
    message_id = accept(workspace).message_ids[0]

    outcome = transactional_message_send(message_id=message_id)

    assert (outcome, only_message().status) == ("failed", "failed")


def test_unreachable_mail_server_is_retried(workspace, domain, settings):
    from common.smtp_sink import _free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", _free_port("127.0.0.1")
    message_id = accept(workspace).message_ids[0]

    outcome = transactional_message_send(message_id=message_id)

    assert outcome == "queued"
    assert "could not connect" in only_message().error


# --- a hand-off a dead worker left behind -----------------------------------------------------------------


def test_message_left_sending_by_a_dead_worker_is_failed_and_never_resent(workspace, domain, settings):
    settings.TRANSACTIONAL_SENDING_TIMEOUT_SECONDS = 60
    with time_machine.travel(NOW, tick=False):
        message_id = accept(workspace).message_ids[0]
        # What a worker killed between the hand-off and the `sent` mark leaves behind.
        TransactionalMessage.objects.filter(id=message_id).update(
            status="sending", claimed_at=NOW, attempts=1
        )
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        result = transactional_dispatch_due()
        resend = transactional_message_send(message_id=message_id)

    message = only_message()
    assert (result.uncertain, resend, message.status) == (1, "", "failed")
    assert "not sent again" in message.error
    assert message.events.last().type == "failed"
    assert mail.outbox == []


def test_a_message_still_within_its_hand_off_time_is_not_reaped(workspace, domain, settings):
    settings.TRANSACTIONAL_SENDING_TIMEOUT_SECONDS = 60
    with time_machine.travel(NOW, tick=False):
        message_id = accept(workspace).message_ids[0]
        TransactionalMessage.objects.filter(id=message_id).update(status="sending", claimed_at=NOW)
    with time_machine.travel(NOW + timedelta(seconds=59), tick=False):
        assert transactional_dispatch_due().uncertain == 0

    assert only_message().status == "sending"
