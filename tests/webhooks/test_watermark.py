"""PostgreSQL hands out event ids before commit: a smaller id can commit after a larger one is visible. The
cursor must not pass it (docs/decisions/040)."""

import psycopg
import pytest
from django.db import connection

from delivery.models import Event
from tests.factories import EventFactory, WebhookEndpointFactory
from tests.webhooks.conftest import deliver
from webhooks.models import WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)


def dsn() -> str:
    s = connection.settings_dict
    return f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} user={s['USER']} dbname={s['NAME']}"


def test_an_event_committed_after_a_later_one_is_not_skipped(workspace, receiver, settings):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite commits one writer at a time, in id order")
    settings.WEBHOOK_SETTLE_MAX_SECONDS = 600
    endpoint = WebhookEndpointFactory(workspace=workspace, url=receiver.url)
    slow = psycopg.connect(dsn())  # a send batch whose transaction is still open
    try:
        with slow.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Event._meta.db_table} (workspace_id, type, occurred_at, email, message_id, data) "
                "VALUES (%s, 'sent', now(), 'early@example.org', '', '{}') RETURNING id",
                [workspace.pk],
            )
            (early_id,) = cursor.fetchone()
        late = EventFactory(workspace=workspace)  # committed, with the larger id
        assert late.id > early_id

        deliver(endpoint)
        deliver(endpoint)
        assert receiver.requests == []  # neither: the open transaction holds the watermark back

        slow.commit()
        deliver(endpoint)
        deliver(endpoint)
    finally:
        slow.close()

    assert sorted(WebhookMessage.objects.values_list("event_id", flat=True)) == [early_id, late.id]
    assert len(receiver.requests) == 2
