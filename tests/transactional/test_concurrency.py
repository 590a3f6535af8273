"""Cancel against the dispatcher's claim, on real PostgreSQL with real concurrent connections."""

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import ApplicationError
from tests.threads import run_threads
from transactional.models import TransactionalMessage
from transactional.services import (
    transactional_dispatch_due,
    transactional_message_cancel,
    transactional_send,
)

from .conftest import FROM

pytestmark = pytest.mark.django_db(transaction=True)


def race(*actions):
    """Run the actions at once, each on its own connection; return what each returned. An exception in
    any of them fails the test: an expected refusal is for the action to catch and return."""
    return run_threads(*actions)


def cancel(workspace, message_id):
    """Cancel the message; returns the ApplicationError when it was refused (the dispatcher won)."""
    try:
        return transactional_message_cancel(workspace=workspace, message_id=message_id)
    except ApplicationError as exc:
        return exc


def test_cancel_racing_the_dispatcher_exactly_one_wins(workspace, domain):
    rounds = 25
    for _ in range(rounds):
        message_id = transactional_send(
            workspace=workspace,
            priority="high",
            sender={"email": FROM},
            to=[{"email": "ana@example.org"}],
            subject="Reset",
            text="Link",
            scheduled_at=(datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
        ).message_ids[0]

        cancelled, dispatched = race(
            lambda m=message_id: cancel(workspace, m),
            transactional_dispatch_due,
        )

        message = TransactionalMessage.objects.get(id=message_id)
        cancel_won = not isinstance(cancelled, ApplicationError)
        if cancel_won:
            assert (message.status, dispatched.scheduled_queued) == ("cancelled", 0)
        else:
            assert getattr(cancelled, "code", None) == "MESSAGE_NOT_CANCELLABLE", cancelled
            assert (message.status, dispatched.scheduled_queued) == ("queued", 1)
        kinds = list(message.events.values_list("type", flat=True))
        assert kinds == ["scheduled", "cancelled" if cancel_won else "queued"]


def test_two_dispatchers_claim_a_message_once(workspace, domain):
    for _ in range(10):
        transactional_send(
            workspace=workspace,
            priority="low",
            sender={"email": FROM},
            to=[{"email": f"p{i}@example.org"} for i in range(20)],
            subject="Reset",
            text="Link",
            scheduled_at=(datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
        )

    first, second = race(transactional_dispatch_due, transactional_dispatch_due)

    assert first.scheduled_queued + second.scheduled_queued == 200
    assert TransactionalMessage.objects.filter(status="queued").count() == 200
    assert all(m.events.filter(type="queued").count() == 1 for m in TransactionalMessage.objects.all())
