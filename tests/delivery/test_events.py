"""Every outcome of a campaign delivery leaves one event in the event table, written by the real send path
(delivery_send_batch against the SMTP sink) and the real tracking endpoints."""

import pytest
from django.test import Client

from campaigns.services import campaign_stop
from delivery import tracking
from delivery.models import Delivery, Event
from delivery.services import delivery_send_batch
from tests.factories import SuppressionFactory


def events(delivery) -> list[Event]:
    return list(Event.objects.filter(delivery_id=delivery.id).order_by("id"))


def path_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


@pytest.fixture
def client():
    return Client(HTTP_USER_AGENT="TestMail/1.0")


def test_a_sent_message_leaves_one_sent_event_with_its_ids(make_deliveries, sink):
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()

    [event] = events(delivery)
    assert (event.type, event.email, event.message_id) == ("sent", delivery.email, delivery.message_id)
    assert (event.campaign_id, event.run_id, event.workspace_id) == (
        delivery.campaign_id,
        delivery.run_id,
        delivery.workspace_id,
    )
    assert sink.messages[0].message["Message-ID"] == event.message_id


def test_a_temporary_refusal_then_acceptance_leaves_deferred_then_sent(make_deliveries, sink):
    [delivery] = make_deliveries(1)
    sink.handler.reject[delivery.email] = "451 4.7.1 Try again later"
    delivery_send_batch(delivery_ids=[delivery.id])
    sink.handler.reject.clear()
    Delivery.objects.filter(pk=delivery.pk).update(send_at=delivery.send_at)  # due again now
    delivery_send_batch(delivery_ids=[delivery.id])

    deferred, sent = events(delivery)
    assert (deferred.type, sent.type) == ("deferred", "sent")
    assert "451" in deferred.data["reason"]
    assert deferred.data["retry_at"].endswith("Z")
    assert len(sink.messages) == 1


def test_a_permanent_refusal_leaves_a_bounced_event_with_the_reason(make_deliveries, sink):
    [delivery] = make_deliveries(1)
    sink.handler.reject[delivery.email] = "550 5.1.1 No such user"
    delivery_send_batch(delivery_ids=[delivery.id])

    [event] = events(delivery)
    assert event.type == "bounced"
    assert "550" in event.data["reason"]


def test_a_message_that_cannot_be_rendered_leaves_a_failed_event(make_deliveries, campaign, sink):
    campaign.html = "<p>{{ 1 / 0 }}</p>"
    campaign.save()
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])

    [event] = events(delivery)
    assert event.type == "failed"
    assert event.data["reason"].startswith("render:")
    assert sink.messages == []


def test_a_recipient_suppressed_at_send_time_leaves_a_cancelled_event(workspace, make_deliveries, sink):
    [delivery] = make_deliveries(1)
    SuppressionFactory(workspace=workspace, email=delivery.email)
    delivery_send_batch(delivery_ids=[delivery.id])

    [event] = events(delivery)
    assert event.type == "cancelled"
    assert event.data["reason"].startswith("suppressed:")


def test_stopping_a_campaign_leaves_a_cancelled_event_per_remaining_recipient(workspace, make_deliveries, campaign):
    deliveries = make_deliveries(3)
    campaign_stop(workspace=workspace, campaign_id=campaign.id)

    assert [[e.type for e in events(d)] for d in deliveries] == [["cancelled"]] * 3
    assert {e.data["reason"] for d in deliveries for e in events(d)} == {"campaign stopped"}


def test_open_click_and_unsubscribe_of_a_sent_message_are_events(make_deliveries, sink, client):
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    client.get(path_of(tracking.open_url(delivery.id)))
    client.get(path_of(tracking.click_url(delivery.id, "https://shop.example.com/sale")))
    client.post(path_of(tracking.unsubscribe_links(delivery.id, "mail.example.com").url), data={"confirm": "1"})

    sent, opened, clicked, unsubscribed = events(delivery)
    assert [e.type for e in (sent, opened, clicked, unsubscribed)] == ["sent", "opened", "clicked", "unsubscribed"]
    assert opened.data["user_agent"] == "TestMail/1.0"
    assert clicked.data["url"] == "https://shop.example.com/sale"
    assert {e.message_id for e in (opened, clicked, unsubscribed)} == {delivery.message_id}
    assert {e.run_id for e in (opened, clicked, unsubscribed)} == {delivery.run_id}


def test_a_batch_of_many_messages_writes_one_event_each(make_deliveries, sink):
    deliveries = make_deliveries(7)
    delivery_send_batch(delivery_ids=[d.id for d in deliveries])

    rows = Event.objects.filter(delivery_id__isnull=False).values_list("delivery_id", "type")
    assert sorted(rows) == sorted((d.id, "sent") for d in deliveries)
