"""The /t/ endpoints (open pixel, click redirect, unsubscribe) and the token and HTML helpers."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client

from audience.models import Contact, Suppression
from delivery import tracking
from delivery.models import Delivery, Event
from delivery.services import delivery_send_batch
from tests.factories import CampaignRunFactory, DeliveryFactory, EventFactory
from tests.threads import run_threads

URL = "https://shop.example.com/sale?a=1&b=2"
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


@pytest.fixture
def client():
    # enforce_csrf_checks: mailbox providers POST one-click unsubscribes with no CSRF token.
    return Client(enforce_csrf_checks=True, HTTP_USER_AGENT="TestMail/1.0")


@pytest.fixture
def delivery(run):
    return DeliveryFactory(run=run, status="sent")


def path_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def forged(token: str) -> str:
    *signed, signature = token.split(".")
    return f"{'.'.join(signed)}.{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BB'}"


def legacy_click_token(target, url: str) -> str:
    """A click token as they were made before they carried a timestamp (`payload.signature`)."""
    return tracking.make_token(tracking.CLICK, [target.payload() if hasattr(target, "payload") else target, url])


# --- open pixel -----------------------------------------------------------------------------------------


def test_open_pixel_is_a_gif_and_stamps_the_first_open(client, delivery):
    response = client.get(path_of(tracking.open_url(delivery.id)))
    delivery.refresh_from_db()
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert delivery.opened_at is not None


def test_every_open_is_an_event_but_opened_at_keeps_the_first(client, delivery):
    client.get(path_of(tracking.open_url(delivery.id)))
    first = Delivery.objects.get(pk=delivery.pk).opened_at
    client.get(path_of(tracking.open_url(delivery.id)))
    events = Event.objects.filter(delivery_id=delivery.id, type="opened")
    assert Delivery.objects.get(pk=delivery.pk).opened_at == first
    assert events.count() == 2
    assert events.first().data["user_agent"] == "TestMail/1.0"


def test_forged_open_token_is_404_and_records_nothing(client, delivery):
    token = tracking.make_token(tracking.OPEN, delivery.id)
    response = client.get(f"/t/o/{forged(token)}.gif")
    assert response.status_code == 404
    assert Delivery.objects.get(pk=delivery.pk).opened_at is None
    assert not Event.objects.exists()


def test_unsubscribe_token_is_not_accepted_as_an_open_token(client, delivery):
    token = tracking.make_token(tracking.UNSUBSCRIBE, delivery.id)
    assert client.get(f"/t/o/{token}.gif").status_code == 404


# --- click ----------------------------------------------------------------------------------------------


def test_click_redirects_to_the_signed_url_and_records_it(client, delivery):
    response = client.get(path_of(tracking.click_url(delivery.id, URL)))
    delivery.refresh_from_db()
    assert response.status_code == 302 and response["Location"] == URL
    assert delivery.clicked_at is not None and delivery.opened_at is not None
    assert Event.objects.get(delivery_id=delivery.id, type="clicked").data["url"] == URL


def test_link_of_a_sent_message_leads_to_its_original_url(client, make_deliveries, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    [sent] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[sent.id])
    html = mail.outbox[0].alternatives[0][0]
    link = html.split('<a href="', 1)[1].split('"', 1)[0]
    assert client.get(path_of(link))["Location"] == URL


def test_click_with_a_tampered_url_is_404_and_changes_nothing(client, delivery):
    payload, timestamp, signature = tracking.click_token(delivery.id, URL).split(".")
    other = tracking.click_token(delivery.id, "https://evil.example.net/").split(".")[0]
    response = client.get(f"/t/c/{other}.{timestamp}.{signature}")
    delivery.refresh_from_db()
    assert response.status_code == 404
    assert delivery.clicked_at is None and not Event.objects.exists()


def test_click_with_a_tampered_timestamp_is_404(client, delivery):
    with time_machine.travel(NOW, tick=False):
        payload, _, signature = tracking.click_token(delivery.id, URL).split(".")
    with time_machine.travel(NOW + 2 * YEAR, tick=False):
        fresh = tracking.click_token(delivery.id, URL).split(".")[1]
        assert client.get(f"/t/c/{payload}.{fresh}.{signature}").status_code == 404


@pytest.mark.parametrize("make", [tracking.click_token, legacy_click_token], ids=["timestamped", "legacy"])
def test_click_with_a_forged_signature_is_404(client, delivery, make):
    assert client.get(f"/t/c/{forged(make(delivery.id, URL))}").status_code == 404


@pytest.mark.parametrize("make", [tracking.click_token, legacy_click_token], ids=["timestamped", "legacy"])
def test_signed_non_web_url_is_not_redirected_to(client, delivery, make):
    assert client.get(f"/t/c/{make(delivery.id, 'javascript:alert(1)')}").status_code == 404


# --- click link expiry (docs/decisions/024) --------------------------------------------------------------


def assert_expired_page(response, url_text: str) -> None:
    assert response.status_code == 410
    assert "Location" not in response
    page = response.content.decode()
    assert "This link has expired" in page
    assert f"<code>{url_text}</code>" in page and "href=" not in page  # shown as text, not a link


def test_a_click_link_redirects_until_it_is_a_year_old(client, delivery):
    with time_machine.travel(NOW, tick=False):
        path = path_of(tracking.click_url(delivery.id, URL))
    with time_machine.travel(NOW + YEAR, tick=False):
        response = client.get(path)

    assert response.status_code == 302 and response["Location"] == URL
    assert Event.objects.filter(delivery_id=delivery.id, type="clicked").count() == 1


def test_an_expired_click_link_shows_the_destination_as_text_and_records_nothing(client, delivery):
    with time_machine.travel(NOW, tick=False):
        path = path_of(tracking.click_url(delivery.id, URL))
    with time_machine.travel(NOW + YEAR + timedelta(seconds=1), tick=False):
        response = client.get(path)

    assert_expired_page(response, "https://shop.example.com/sale?a=1&amp;b=2")
    delivery.refresh_from_db()
    assert delivery.clicked_at is None and not Event.objects.exists()


def test_the_click_link_max_age_is_a_setting(client, delivery, settings):
    settings.TRACKING_CLICK_LINK_MAX_AGE_DAYS = 7
    with time_machine.travel(NOW, tick=False):
        path = path_of(tracking.click_url(delivery.id, URL))
    with time_machine.travel(NOW + timedelta(days=7, seconds=1), tick=False):
        assert client.get(path).status_code == 410


def test_the_expired_page_escapes_the_destination(client, delivery):
    with time_machine.travel(NOW, tick=False):
        path = path_of(tracking.click_url(delivery.id, "https://x.example/?q=<script>alert(1)</script>"))
    with time_machine.travel(NOW + 2 * YEAR, tick=False):
        page = client.get(path).content.decode()

    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_a_legacy_click_link_is_as_old_as_its_message(client, delivery):
    Delivery.objects.filter(pk=delivery.pk).update(sent_at=NOW)
    path = f"/t/c/{legacy_click_token(delivery.id, URL)}"
    with time_machine.travel(NOW + YEAR - timedelta(days=1), tick=False):
        young = client.get(path)
    with time_machine.travel(NOW + YEAR + timedelta(seconds=1), tick=False):
        old = client.get(path)

    assert young.status_code == 302 and young["Location"] == URL
    assert_expired_page(old, "https://shop.example.com/sale?a=1&amp;b=2")
    assert Event.objects.filter(type="clicked").count() == 1


def test_a_legacy_click_link_of_a_transactional_message_is_as_old_as_its_sent_event(client, workspace):
    ref = tracking.MessageRef(str(uuid.uuid4()), str(workspace.id), str(uuid.uuid4()), "ana@example.org")
    EventFactory(workspace=workspace, type="sent", message_id=ref.message_id, occurred_at=NOW)
    path = f"/t/c/{legacy_click_token(ref, URL)}"
    with time_machine.travel(NOW + timedelta(days=30), tick=False):
        young = client.get(path)
    with time_machine.travel(NOW + YEAR + timedelta(seconds=1), tick=False):
        old = client.get(path)

    assert (young.status_code, old.status_code) == (302, 410)
    assert Event.objects.filter(type="clicked", message_id=ref.message_id).count() == 1


def test_a_legacy_click_link_whose_message_is_gone_counts_as_expired(client, db):
    response = client.get(f"/t/c/{legacy_click_token(987654321, URL)}")

    assert_expired_page(response, "https://shop.example.com/sale?a=1&amp;b=2")
    assert not Event.objects.exists()


# --- HEAD: answered like GET, records nothing ------------------------------------------------------------


def test_head_on_the_open_pixel_answers_the_gif_headers_and_records_nothing(client, delivery):
    response = client.head(path_of(tracking.open_url(delivery.id)))

    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert Delivery.objects.get(pk=delivery.pk).opened_at is None
    assert not Event.objects.exists()


def test_head_on_a_click_link_answers_the_redirect_and_records_nothing(client, delivery):
    response = client.head(path_of(tracking.click_url(delivery.id, URL)))

    assert response.status_code == 302 and response["Location"] == URL
    delivery.refresh_from_db()
    assert delivery.clicked_at is None and delivery.opened_at is None
    assert not Event.objects.exists()


def test_head_on_an_expired_click_link_answers_410(client, delivery):
    with time_machine.travel(NOW, tick=False):
        path = path_of(tracking.click_url(delivery.id, URL))
    with time_machine.travel(NOW + 2 * YEAR, tick=False):
        assert client.head(path).status_code == 410


def test_head_on_an_unsubscribe_link_answers_the_page_and_changes_nothing(client, delivery):
    response = client.head(unsubscribe_path(delivery))

    assert response.status_code == 200
    assert Contact.objects.get(pk=delivery.contact_id).status == "subscribed"
    assert not Suppression.objects.exists() and not Event.objects.exists()


# --- unsubscribe ----------------------------------------------------------------------------------------


def unsubscribe_path(delivery) -> str:
    return path_of(tracking.unsubscribe_links(delivery.id, "mail.example.com").url)


def test_unsubscribe_get_shows_a_confirm_form_and_changes_nothing(client, delivery):
    response = client.get(unsubscribe_path(delivery))
    assert response.status_code == 200
    assert b'<form method="post"' in response.content
    assert Contact.objects.get(pk=delivery.contact_id).status == "subscribed"
    assert not Suppression.objects.exists() and not Event.objects.exists()


def test_one_click_post_unsubscribes_and_suppresses(client, delivery):
    response = client.post(
        unsubscribe_path(delivery),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Contact.objects.get(pk=delivery.contact_id).status == "unsubscribed"
    assert Suppression.objects.get(email=delivery.email).reason == "unsubscribed"
    assert Event.objects.get(delivery_id=delivery.id).type == "unsubscribed"


def test_confirm_form_post_unsubscribes(client, delivery):
    response = client.post(unsubscribe_path(delivery), data={"confirm": "1"})
    assert response.status_code == 200 and b"unsubscribed" in response.content
    assert Contact.objects.get(pk=delivery.contact_id).status == "unsubscribed"


def test_unsubscribing_twice_records_one_event(client, delivery):
    client.post(unsubscribe_path(delivery), data={"confirm": "1"})
    client.post(unsubscribe_path(delivery), data={"confirm": "1"})
    assert Event.objects.filter(type="unsubscribed").count() == 1


def test_forged_unsubscribe_post_is_404_and_changes_nothing(client, delivery):
    token = tracking.make_token(tracking.UNSUBSCRIBE, delivery.id)
    response = client.post(
        f"/t/u/{forged(token)}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 404
    assert Contact.objects.get(pk=delivery.contact_id).status == "subscribed"
    assert not Suppression.objects.exists()


def test_unsubscribed_contact_gets_no_later_message(client, delivery, campaign, sink):
    client.post(unsubscribe_path(delivery), data={"confirm": "1"})
    later = DeliveryFactory(run=CampaignRunFactory(campaign=campaign), contact=delivery.contact)
    delivery_send_batch(delivery_ids=[later.id])
    assert sink.messages == []


# --- per-client limit (TRACKING_RATE_LIMIT) -------------------------------------------------------------

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def two_a_minute(settings):
    settings.TRACKING_RATE_LIMIT = "2/min"
    with time_machine.travel(NOW, tick=False) as clock:
        yield clock


def test_open_pixel_over_the_limit_is_still_a_gif_but_records_nothing(client, delivery, two_a_minute):
    responses = [client.get(path_of(tracking.open_url(delivery.id))) for _ in range(3)]
    assert [(r.status_code, r["Content-Type"], r.content[:6]) for r in responses] == [(200, "image/gif", b"GIF89a")] * 3
    assert Event.objects.filter(type="opened").count() == 2


def test_click_over_the_limit_still_redirects_but_records_nothing(client, delivery, two_a_minute):
    responses = [client.get(path_of(tracking.click_url(delivery.id, URL))) for _ in range(3)]
    assert [(r.status_code, r["Location"]) for r in responses] == [(302, URL)] * 3
    assert Event.objects.filter(type="clicked").count() == 2


def test_unsubscribe_post_over_the_limit_is_429_with_retry_after_and_changes_nothing(
    client, make_deliveries, two_a_minute
):
    first, second, third = make_deliveries(3)
    for delivery in (first, second):
        assert client.post(unsubscribe_path(delivery), data={"confirm": "1"}).status_code == 200
    refused = client.post(unsubscribe_path(third), data={"confirm": "1"})
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert b"try again" in refused.content
    assert Contact.objects.get(pk=third.contact_id).status == "subscribed"
    assert not Suppression.objects.filter(email=third.email).exists()
    two_a_minute.shift(timedelta(seconds=60))
    assert client.post(unsubscribe_path(third), data={"confirm": "1"}).status_code == 200
    assert Contact.objects.get(pk=third.contact_id).status == "unsubscribed"


def test_unsubscribe_confirm_pages_are_not_counted(client, delivery, two_a_minute):
    assert [client.get(unsubscribe_path(delivery)).status_code for _ in range(3)] == [200, 200, 200]
    assert client.post(unsubscribe_path(delivery), data={"confirm": "1"}).status_code == 200


def test_each_endpoint_has_its_own_limit(client, delivery, two_a_minute):
    for _ in range(3):
        client.get(path_of(tracking.open_url(delivery.id)))
    client.get(path_of(tracking.click_url(delivery.id, URL)))
    assert Event.objects.filter(type="clicked").count() == 1


def test_the_limit_is_per_client_address(client, delivery, two_a_minute):
    for _ in range(3):
        client.get(path_of(tracking.open_url(delivery.id)), REMOTE_ADDR="203.0.113.1")
    client.get(path_of(tracking.open_url(delivery.id)), REMOTE_ADDR="203.0.113.2")
    assert Event.objects.filter(type="opened").count() == 3


def test_a_forwarded_for_header_does_not_buy_a_client_more_without_a_trusted_proxy(client, delivery, two_a_minute):
    path = path_of(tracking.open_url(delivery.id))
    for i in range(4):
        client.get(path, REMOTE_ADDR="203.0.113.1", HTTP_X_FORWARDED_FOR=f"10.9.0.{i}")
    assert Event.objects.filter(type="opened").count() == 2


def test_behind_a_trusted_proxy_readers_are_told_apart_by_forwarded_for(client, delivery, two_a_minute, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    path = path_of(tracking.open_url(delivery.id))
    for i in range(4):
        client.get(path, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    assert Event.objects.filter(type="opened").count() == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_pixel_fetches_from_one_address_record_exactly_the_limit(delivery, settings):
    settings.TRACKING_RATE_LIMIT = "50/min"
    path = path_of(tracking.open_url(delivery.id))

    def reader():
        fetcher = Client()
        return [fetcher.get(path).status_code for _ in range(20)]

    with time_machine.travel(NOW, tick=False):
        statuses = [status for statuses in run_threads(*[reader] * 5, timeout=120) for status in statuses]
    assert statuses == [200] * 100
    assert Event.objects.filter(type="opened").count() == 50


# --- HTML helpers ---------------------------------------------------------------------------------------


def test_rewrite_links_leaves_mailto_anchors_and_own_links(settings):
    own = f"{settings.PUBLIC_BASE_URL}/t/u/abc"
    body = (
        f'<a href="mailto:x@y.z">m</a><a href="#top">t</a><a href="{own}">u</a><a href=\'http://a.b/c\'>w</a>'
    )
    rewritten = tracking.rewrite_links(body, 7)
    assert 'href="mailto:x@y.z"' in rewritten and 'href="#top"' in rewritten and f'href="{own}"' in rewritten
    assert f"href='{tracking.click_url(7, 'http://a.b/c')}'" in rewritten


def test_unsubscribe_token_is_a_valid_mailto_local_part():
    links = tracking.unsubscribe_links(123, "mail.example.com")
    local = links.mailto.split("@")[0]
    assert all(ch.isalnum() or ch in "+-_." for ch in local) and ".." not in local
