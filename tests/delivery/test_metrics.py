from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import Delivery
from delivery.services import delivery_send_batch
from tests.metrics_text import scrape

pytestmark = pytest.mark.django_db

SENT = ("mailsched_messages_total", ("outcome", "sent"), ("queue", "bulk"))
LAG_COUNT = ("mailsched_schedule_lag_seconds_count", ("queue", "bulk"))
UNCLAIMED = ("mailsched_due_unclaimed", ("queue", "bulk"))


def test_a_sent_batch_counts_its_messages_and_their_lag(client, make_deliveries, sink):
    deliveries = make_deliveries(3)
    before = scrape(client)
    delivery_send_batch(delivery_ids=[d.id for d in deliveries])
    after = scrape(client)
    assert after[SENT] - before.get(SENT, 0) == 3
    assert after[LAG_COUNT] - before.get(LAG_COUNT, 0) == 3


def test_due_deliveries_no_batch_claimed_are_a_gauge_with_the_oldest_age(client, make_deliveries):
    [late, _] = make_deliveries(2)
    Delivery.objects.filter(pk=late.pk).update(send_at=timezone.now() - timedelta(minutes=5))
    found = scrape(client)
    assert found[UNCLAIMED] == 2
    assert found[("mailsched_due_unclaimed_oldest_seconds", ("queue", "bulk"))] >= 300
