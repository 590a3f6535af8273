"""Cancel against the dispatcher's claim, on real PostgreSQL with real concurrent connections."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from common.errors import ApplicationError
from transactional.models import TransactionalMessage
from transactional.services import (
    transactional_dispatch_due,
    transactional_message_cancel,
    transactional_send,
)

from .conftest import FROM

pytestmark = pytest.mark.django_db(transaction=True)


def race(*actions):
    """Run the actions at once, each on its own connection; return what each returned or raised."""
    barrier = threading.Barrier(len(actions))
    outcomes: list = [None] * len(actions)

    def run(index, action):
        try:
            barrier.wait()
            outcomes[index] = action()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


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
            lambda m=message_id: transactional_message_cancel(workspace=workspace, message_id=m),
            transactional_dispatch_due,
        )

        message = TransactionalMessage.objects.get(id=message_id)
        cancel_won = not isinstance(cancelled, ApplicationError)
        assert not isinstance(dispatched, Exception), dispatched
        if cancel_won:
            assert (message.status, dispatched.scheduled_queued) == ("cancelled", 0)
        else:
            assert getattr(cancelled, "code", None) == "MESSAGE_NOT_CANCELLABLE", cancelled
            assert (message.status, dispatched.scheduled_queued) == ("queued", 1)
        kinds = list(message.events.values_list("kind", flat=True))
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
    assert all(m.events.filter(kind="queued").count() == 1 for m in TransactionalMessage.objects.all())
