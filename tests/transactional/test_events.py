"""Every step of a transactional message leaves an event in the one event table (delivery.Event), through
the real API, the real send service against the SMTP sink, and the real tracking endpoints."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from audience.models import Contact, Suppression
from delivery.models import Event
from tests.factories import ContactFactory
from transactional.models import TransactionalMessage
from transactional.services import transactional_dispatch_due, transactional_message_send

from .conftest import body, post

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
TO = "ana@example.org"
HTML = '<html><body><p>Your order</p><a href="https://shop.example.com/orders/7">See it</a></body></html>'


def types(message_id) -> list[str]:
    return list(Event.objects.filter(message_id=str(message_id)).order_by("id").values_list("type", flat=True))


def accept(api, **overrides) -> str:
    response = post(api, body(**overrides))
    assert response.status_code == 202, response.json()
    return response.json()["message_id"]


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_a_message_sent_now_leaves_queued_then_sent_with_its_ids(api, domain, sink):
    message_id = accept(api)
    transactional_message_send(message_id=message_id)

    queued, sent = Event.objects.filter(message_id=message_id).order_by("id")
    message = TransactionalMessage.objects.get()
    assert (queued.type, sent.type) == ("queued", "sent")
    assert (sent.email, sent.batch_id, sent.workspace_id) == (TO, message.batch_id, message.workspace_id)
    assert sent.data["smtp_message_id"] == sink.messages[0].message["Message-ID"]


def test_a_scheduled_then_cancelled_message_leaves_scheduled_then_cancelled(api, domain):
    with time_machine.travel(NOW, tick=False):
        message_id = accept(api, scheduled_at="2026-06-10T15:00:00Z")
        response = api.post(f"/api/v1/transactional/messages/{message_id}/cancel")

    assert response.status_code == 200
    assert types(message_id) == ["scheduled", "cancelled"]


def test_a_temporary_refusal_then_acceptance_leaves_deferred_then_sent(api, domain, sink, settings):
    settings.TRANSACTIONAL_RETRY_BASE_SECONDS = 30
    sink.handler.reject[TO] = "451 4.7.1 Try again later"
    with time_machine.travel(NOW, tick=False):
        message_id = accept(api)
        transactional_message_send(message_id=message_id)
    sink.handler.reject.clear()
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        transactional_dispatch_due()
        transactional_message_send(message_id=message_id)

    assert types(message_id) == ["queued", "deferred", "sent"]
    deferred = Event.objects.get(message_id=message_id, type="deferred")
    assert "451" in deferred.data["reason"]
    assert deferred.data["retry_at"] == "2026-06-10T12:00:30Z"


def test_a_permanent_refusal_leaves_a_bounced_event_with_the_reason(api, domain, sink):
    sink.handler.reject[TO] = "550 5.1.1 No such user"
    message_id = accept(api)
    transactional_message_send(message_id=message_id)

    assert types(message_id) == ["queued", "bounced"]
    assert "550" in Event.objects.get(message_id=message_id, type="bounced").data["reason"]


def test_refusals_until_the_attempt_limit_end_with_a_failed_event(api, domain, sink, settings):
    settings.TRANSACTIONAL_MAX_ATTEMPTS = 1
    sink.handler.reject[TO] = "451 4.7.1 Try again later"
    message_id = accept(api)
    transactional_message_send(message_id=message_id)

    assert types(message_id) == ["queued", "failed"]


def test_tracked_open_click_and_unsubscribe_are_events_of_the_message(api, domain, sink):
    contact = ContactFactory(workspace=api.workspace, email=TO)
    message_id = accept(api, html=HTML, tracking={"opens": True, "clicks": True, "unsubscribe": True})
    transactional_message_send(message_id=message_id)
    delivered = sink.messages[0].message
    html = delivered.get_body(preferencelist=("html",)).get_content()
    pixel = re.search(r'src="([^"]+/t/o/[^"]+)"', html).group(1)
    link = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
    unsubscribe = re.search(r"<(https?://[^>]+/t/u/[^>]+)>", delivered["List-Unsubscribe"]).group(1)
    browser = Client(HTTP_USER_AGENT="TestMail/1.0")

    browser.get(path_of(pixel))
    clicked = browser.get(path_of(link))
    one_click = {"data": "List-Unsubscribe=One-Click", "content_type": "application/x-www-form-urlencoded"}
    browser.post(path_of(unsubscribe), **one_click)

    assert clicked["Location"] == "https://shop.example.com/orders/7"
    assert types(message_id) == ["queued", "sent", "opened", "clicked", "unsubscribed"]
    assert Event.objects.get(message_id=message_id, type="clicked").data["url"] == "https://shop.example.com/orders/7"
    assert delivered["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert Contact.objects.get(pk=contact.pk).status == "unsubscribed"
    assert Suppression.objects.filter(workspace=api.workspace, email=TO, reason="unsubscribed").exists()


def test_without_tracking_a_message_carries_no_pixel_no_rewritten_link_and_no_list_unsubscribe(api, domain, sink):
    message_id = accept(api, html=HTML)
    transactional_message_send(message_id=message_id)
    delivered = sink.messages[0].message

    html = delivered.get_body(preferencelist=("html",)).get_content()
    assert "/t/o/" not in html and 'href="https://shop.example.com/orders/7"' in html
    assert delivered["List-Unsubscribe"] is None
