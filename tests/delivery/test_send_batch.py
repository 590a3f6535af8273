"""delivery_send_batch against a real SMTP server (common.smtp_sink) and Django's locmem backend."""

import threading
from collections import Counter
from datetime import timedelta
from email.utils import parseaddr

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.utils import timezone

from audience.models import Contact, Suppression
from campaigns.models import Campaign, CampaignRun
from campaigns.services import campaign_run_deliveries_final
from delivery import content, engine, tracking
from delivery.models import Delivery, Event, SendProgress
from delivery.services import delivery_send_batch, retry_delay
from delivery.tasks import send_batch
from tests.factories import DeliveryFactory, SuppressionFactory, TemplateFactory
from tests.threads import in_background, run_threads


def ids(deliveries) -> list[int]:
    return [d.id for d in deliveries]


def statuses(deliveries) -> list[str]:
    return [Delivery.objects.get(pk=d.pk).status for d in deliveries]


def html_part(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


# --- SMTP: what arrives ----------------------------------------------------------------------------------


def test_every_recipient_gets_exactly_one_message(make_deliveries, sink):
    deliveries = make_deliveries(5)
    delivery_send_batch(delivery_ids=ids(deliveries))
    assert sorted(rcpt for m in sink.messages for rcpt in m.rcpt_tos) == sorted(d.email for d in deliveries)
    assert statuses(deliveries) == ["sent"] * 5


def test_message_is_personalised_per_recipient(make_deliveries, sink):
    [delivery] = make_deliveries(1, first_name="Ana")
    delivery_send_batch(delivery_ids=[delivery.id])
    message = sink.messages[0].message
    assert message["Subject"] == "Hi Ana"
    assert message.get_body(preferencelist=("plain",)).get_content().strip() == "Hi Ana"
    assert "<p>Hi Ana</p>" in html_part(message)


def test_message_id_is_sent_and_stored_on_the_delivery(make_deliveries, sink):
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    assert sink.messages[0].message["Message-ID"] == delivery.message_id
    assert delivery.message_id.startswith(f"<delivery-{delivery.id}.")
    assert delivery.message_id.endswith("@mail.example.com>")
    assert delivery.sent_at is not None


def test_list_unsubscribe_has_https_link_mailto_and_one_click_post(make_deliveries, sink, settings):
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])
    message = sink.messages[0].message
    token = tracking.make_token(tracking.UNSUBSCRIBE, delivery.id)
    assert message["List-Unsubscribe"] == (
        f"<{settings.PUBLIC_BASE_URL}/t/u/{token}>, <mailto:unsubscribe+{token}@mail.example.com>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_preheader_is_hidden_text_at_the_top_of_the_html(make_deliveries, sink):
    [delivery] = make_deliveries(1, first_name="Ana")
    delivery_send_batch(delivery_ids=[delivery.id])
    body = html_part(sink.messages[0].message)
    assert body.startswith('<html><body><div style="display:none;')
    assert body.index("Big sale for Ana") < body.index("<p>Hi Ana</p>")


def test_tracking_on_adds_open_pixel_and_rewrites_http_links(make_deliveries, sink, settings):
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])
    body = html_part(sink.messages[0].message)
    assert f'src="{tracking.open_url(delivery.id)}"' in body
    assert f'href="{tracking.click_url(delivery.id, "https://shop.example.com/sale?a=1&b=2")}"' in body
    assert "https://shop.example.com" not in body
    assert 'href="mailto:help@example.com"' in body


def test_tracking_off_leaves_links_and_adds_no_pixel(make_deliveries, sink, campaign, settings):
    campaign.tracking = {"opens": False, "clicks": False}
    campaign.save()
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])
    body = html_part(sink.messages[0].message)
    assert 'href="https://shop.example.com/sale?a=1&amp;b=2"' in body
    assert "/t/o/" not in body and "/t/c/" not in body


def test_template_content_is_used_when_the_campaign_has_none(workspace, make_deliveries, sink, campaign):
    campaign.template = TemplateFactory(
        workspace=workspace,
        subject="T {{ first_name }}",
        html="<p>From template {{ first_name }}</p>",
        text="",
    )
    campaign.subject, campaign.html, campaign.text = "", "", ""
    campaign.save()
    [delivery] = make_deliveries(1, first_name="Bo")
    delivery_send_batch(delivery_ids=[delivery.id])
    message = sink.messages[0].message
    assert message["Subject"] == "T Bo"
    assert "<p>From template Bo</p>" in message.get_body().get_content()


def test_one_smtp_connection_serves_the_whole_batch(make_deliveries, sink):
    peers = set()
    accept_rcpt = sink.handler.handle_RCPT

    async def handle_RCPT(server, session, envelope, address, rcpt_options):
        peers.add(session.peer)
        return await accept_rcpt(server, session, envelope, address, rcpt_options)

    sink.handler.handle_RCPT = handle_RCPT
    deliveries = make_deliveries(4)
    delivery_send_batch(delivery_ids=ids(deliveries))
    assert len(sink.messages) == 4
    assert len(peers) == 1


# --- the generic backend path (locmem here; any django-anymail ESP in production) --------------------------


def test_locmem_backend_sends_with_the_same_headers(make_deliveries, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    [delivery] = make_deliveries(1, first_name="Ana")
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    [email] = mail.outbox
    message = email.message()
    assert delivery.status == "sent"
    assert email.to == [f"{delivery.contact.first_name} {delivery.contact.last_name} <{delivery.email}>"]
    assert email.subject == "Hi Ana"
    assert message["Message-ID"] == delivery.message_id
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<http")
    html = email.alternatives[0][0]
    assert "Big sale for Ana" in html and "/t/o/" in html


# --- who is not sent to ------------------------------------------------------------------------------------


def test_address_on_the_suppression_list_is_skipped_with_the_reason(workspace, make_deliveries, sink):
    [delivery] = make_deliveries(1)
    SuppressionFactory(workspace=workspace, email=delivery.email, reason="complained")
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    assert sink.messages == []
    assert (delivery.status, delivery.error) == ("skipped", "suppressed: suppression list (complained)")


def test_contact_unsubscribed_since_fan_out_is_skipped(make_deliveries, sink):
    [delivery] = make_deliveries(1)
    Contact.objects.filter(pk=delivery.contact_id).update(status="unsubscribed")
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    assert sink.messages == []
    assert (delivery.status, delivery.error) == ("skipped", "suppressed: contact unsubscribed")


def test_delivery_whose_contact_row_is_gone_is_skipped_as_deleted(make_deliveries, sink):
    # The database does not enforce delivery -> contact: a contact deleted while a fan-out that read it
    # was running leaves an id that names no one (docs/decisions/032). It must read as deleted.
    [delivery] = make_deliveries(1)
    Contact.objects.filter(pk=delivery.contact_id)._raw_delete(using="default")
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    assert delivery.contact_id is not None
    assert sink.messages == []
    assert (delivery.status, delivery.error) == ("skipped", "suppressed: contact deleted")


def test_skipped_deliveries_count_on_the_run(make_deliveries, sink, run):
    deliveries = make_deliveries(3)
    Contact.objects.filter(pk=deliveries[0].contact_id).update(status="bounced")
    delivery_send_batch(delivery_ids=ids(deliveries))
    run.refresh_from_db()
    assert (run.sent, run.skipped, run.failed) == (2, 1, 0)


def test_running_the_batch_twice_sends_nothing_twice(make_deliveries, sink):
    deliveries = make_deliveries(3)
    delivery_send_batch(delivery_ids=ids(deliveries))
    second = delivery_send_batch(delivery_ids=ids(deliveries))
    assert len(sink.messages) == 3
    assert second.claimed == 0


def test_rows_leased_by_another_batch_are_not_claimed(make_deliveries, sink):
    deliveries = make_deliveries(2)
    Delivery.objects.filter(pk=deliveries[0].pk).update(lease_until=timezone.now() + timedelta(minutes=5))
    result = delivery_send_batch(delivery_ids=ids(deliveries))
    assert result.claimed == 1
    assert statuses(deliveries) == ["queued", "sent"]


def test_paused_campaign_deliveries_stay_queued_untouched(make_deliveries, sink, campaign):
    deliveries = make_deliveries(2)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    result = delivery_send_batch(delivery_ids=ids(deliveries))
    assert result.claimed == 0 and sink.messages == []
    assert list(Delivery.objects.filter(pk__in=ids(deliveries)).values_list("status", "lease_until", "attempts")) == [
        ("queued", None, 0),
        ("queued", None, 0),
    ]


def test_cancelled_campaign_deliveries_end_cancelled_unsent(make_deliveries, sink, campaign):
    deliveries = make_deliveries(2)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CANCELLED)
    result = delivery_send_batch(delivery_ids=ids(deliveries))
    assert sink.messages == []
    assert result.cancelled == 2
    assert statuses(deliveries) == ["cancelled", "cancelled"]


def test_delivery_not_yet_due_is_not_claimed(make_deliveries, sink):
    [delivery] = make_deliveries(1)
    Delivery.objects.filter(pk=delivery.pk).update(send_at=timezone.now() + timedelta(minutes=1))
    assert delivery_send_batch(delivery_ids=[delivery.id]).claimed == 0
    assert sink.messages == []


# --- SMTP answers ---------------------------------------------------------------------------------------


def test_4xx_requeues_with_exponential_backoff(make_deliveries, sink):
    [delivery] = make_deliveries(1)
    sink.handler.reject = {delivery.email: "451 Try later"}
    before = timezone.now()
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.lease_until) == ("queued", 1, None)
    assert "451" in delivery.error
    assert before + timedelta(seconds=60) <= delivery.send_at <= timezone.now() + timedelta(seconds=60)


def test_backoff_doubles_and_is_capped_at_an_hour():
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 7, 20)] == [60, 120, 240, 3600, 3600]


def test_4xx_on_the_last_allowed_attempt_fails(make_deliveries, sink, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    [delivery] = make_deliveries(1)
    Delivery.objects.filter(pk=delivery.pk).update(attempts=2)
    sink.handler.reject = {delivery.email: "451 Try later"}
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 3)


def test_5xx_bounces_and_suppresses_the_address(workspace, make_deliveries, sink, run):
    [delivery, other] = make_deliveries(2)
    sink.handler.reject = {delivery.email: "550 No such user"}
    delivery_send_batch(delivery_ids=[delivery.id, other.id])
    delivery.refresh_from_db()
    run.refresh_from_db()
    assert delivery.status == "bounced" and "550" in delivery.error
    assert Contact.objects.get(pk=delivery.contact_id).status == "bounced"
    assert Suppression.objects.get(workspace=workspace, email=delivery.email).reason == "bounced"
    assert statuses([other]) == ["sent"]
    assert (run.sent, run.failed) == (1, 1)


def test_template_error_fails_the_delivery_with_the_reason(make_deliveries, sink, campaign):
    campaign.subject = "{{ 1 / 0 }}"
    campaign.save()
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    assert sink.messages == []
    assert delivery.status == "failed"
    assert delivery.error.startswith("render:") and "ZeroDivisionError" in delivery.error


def test_template_over_a_size_limit_fails_only_the_delivery_it_was_rendered_for(make_deliveries, sink, campaign):
    campaign.html = "<p>Hi {% if first_name == 'Eve' %}{{ 'a'.center(2000000000) }}{% endif %}{{ first_name }}</p>"
    campaign.save()
    [ann, eve, bob] = [make_deliveries(1, first_name=name)[0] for name in ("Ann", "Eve", "Bob")]
    delivery_send_batch(delivery_ids=ids([ann, eve, bob]))
    eve.refresh_from_db()
    assert statuses([ann, eve, bob]) == ["sent", "failed", "sent"]
    assert eve.error == (
        "render: html: 'center' would build 2000000000 characters; a template may build at most 5000000 at once."
    )
    assert sorted(rcpt for m in sink.messages for rcpt in m.rcpt_tos) == sorted([ann.email, bob.email])


def test_template_out_of_budget_fails_its_run_unrendered_and_the_rest_of_the_batch_goes(
    make_deliveries, sink, campaign, settings, monkeypatch
):
    settings.TEMPLATE_RENDER_MAX_STEPS = 10_000
    campaign.text = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    campaign.save()
    hostile = make_deliveries(3)
    other = DeliveryFactory(run__campaign__workspace=campaign.workspace)
    renders = []
    real_render = content.render

    def counting_render(source, *args, **kwargs):  # a spy: it renders for real
        renders.append(source)
        return real_render(source, *args, **kwargs)

    monkeypatch.setattr(content, "render", counting_render)
    delivery_send_batch(delivery_ids=ids([*hostile, other]))
    assert statuses([*hostile, other]) == ["failed", "failed", "failed", "sent"]
    reason = (
        "render: text: The template took too long to render: "
        "more than 10000 steps (loop iterations, calls and filters)."
    )
    assert {Delivery.objects.get(pk=d.pk).error for d in hostile} == {reason}
    assert renders.count(campaign.text) == 1  # not again for each recipient of the batch
    assert [rcpt for m in sink.messages for rcpt in m.rcpt_tos] == [other.email]


def test_unreachable_mail_server_requeues_without_counting_an_attempt(make_deliveries, settings):
    from common.smtp_sink import _free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", _free_port("127.0.0.1")
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    deliveries = make_deliveries(2)
    result = delivery_send_batch(delivery_ids=ids(deliveries))
    assert result.deferred == 2
    rows = Delivery.objects.filter(pk__in=ids(deliveries))
    assert {(d.status, d.attempts, d.lease_until) for d in rows} == {("queued", 0, None)}
    assert all(d.send_at > timezone.now() for d in rows)


# --- exactly once ---------------------------------------------------------------------------------------


class WorkerKilledOnThirdMessage(LocmemBackend):
    """Stands in for a worker process killed (SIGKILL, OOM) while the third message is on the wire."""

    def send_messages(self, messages):
        if len(mail.outbox) == 2:
            raise SystemExit("killed")
        return super().send_messages(messages)


def test_killed_worker_leaves_only_the_in_flight_message_sending(make_deliveries, settings):
    settings.EMAIL_BACKEND = "tests.delivery.test_send_batch.WorkerKilledOnThirdMessage"
    deliveries = make_deliveries(5)
    with pytest.raises(SystemExit):
        delivery_send_batch(delivery_ids=ids(deliveries))
    # The outcomes were flushed on the way out; the chunk's untouched rows are still `sending`, and the
    # batch's progress row says the third is the one that was in flight.
    assert statuses(deliveries) == ["sent", "sent", "sending", "sending", "sending"]
    assert SendProgress.objects.get().position == deliveries[2].id


class TwentySecondsPerMessage(LocmemBackend):
    """Each hand-off takes 20 s (of travelled time), and the reaper runs as beat would, before each one."""

    travel = None
    leases: list = []
    reaped: list = []

    def send_messages(self, messages):
        email = parseaddr(messages[0].to[0])[1]
        self.leases.append(Delivery.objects.get(email=email).lease_until)
        self.reaped.append(engine.reap_leases())
        self.travel.shift(timedelta(seconds=20))
        return super().send_messages(messages)


def test_a_live_batch_renews_its_lease_as_it_goes_so_the_reaper_leaves_it_alone(make_deliveries, settings):
    settings.EMAIL_BACKEND = "tests.delivery.test_send_batch.TwentySecondsPerMessage"
    settings.DELIVERY_LEASE_SECONDS = 30
    settings.DELIVERY_MARK_EVERY = 2
    deliveries = make_deliveries(6)  # 120 s of sending on a 30 s lease
    TwentySecondsPerMessage.leases, TwentySecondsPerMessage.reaped = [], []
    with time_machine.travel(timezone.now(), tick=False) as travel:
        TwentySecondsPerMessage.travel = travel
        result = delivery_send_batch(delivery_ids=ids(deliveries))

    assert result.sent == 6 and len(mail.outbox) == 6
    assert statuses(deliveries) == ["sent"] * 6
    leases = TwentySecondsPerMessage.leases
    assert len(set(leases)) == 6 and leases == sorted(leases)  # renewed before every message here
    assert all(
        (r.settled_sent, r.requeued, r.retried, r.uncertain) == (0, 0, 0, 0) for r in TwentySecondsPerMessage.reaped
    )


def test_rows_left_claimed_by_a_dead_batch_are_sent_after_the_lease(make_deliveries, sink):
    deliveries = make_deliveries(2)
    Delivery.objects.filter(pk__in=ids(deliveries)).update(lease_until=timezone.now() - timedelta(seconds=1))
    delivery_send_batch(delivery_ids=ids(deliveries))
    assert len(sink.messages) == 2


# --- the end of a run -------------------------------------------------------------------------------------


def test_last_batch_of_a_run_ends_the_run_and_the_campaign(make_deliveries, sink, run, campaign):
    deliveries = make_deliveries(3)
    delivery_send_batch(delivery_ids=ids(deliveries[:2]))
    run.refresh_from_db()
    assert run.status == "sending"
    delivery_send_batch(delivery_ids=ids(deliveries[2:]))
    run.refresh_from_db()
    campaign.refresh_from_db()
    assert (run.status, run.sent, run.total) == ("sent", 3, 3)
    assert run.finished_at is not None
    assert campaign.status == "sent"


def test_run_with_a_retry_pending_is_not_finished(make_deliveries, sink, run):
    [delivery] = make_deliveries(1)
    sink.handler.reject = {delivery.email: "451 Try later"}
    delivery_send_batch(delivery_ids=[delivery.id])
    run.refresh_from_db()
    assert run.status == "sending"


def test_run_ending_while_its_campaign_is_paused_leaves_the_campaign_paused(run, campaign):
    DeliveryFactory(run=run, status="sent")
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    assert campaign_run_deliveries_final(run_id=run.id)
    campaign.refresh_from_db()
    assert (CampaignRun.objects.get(pk=run.pk).status, campaign.status) == ("sent", "paused")


def test_recurring_campaign_with_a_next_run_returns_to_scheduled(run, campaign):
    Campaign.objects.filter(pk=campaign.pk).update(
        schedule_type="recurring", next_run_at=timezone.now() + timedelta(days=1)
    )
    DeliveryFactory(run=run, status="sent")
    campaign_run_deliveries_final(run_id=run.id)
    campaign.refresh_from_db()
    assert campaign.status == "scheduled"


def test_finished_run_counters_are_recounted_from_the_rows(run, campaign):
    for status in ("sent", "sent", "bounced", "skipped", "uncertain"):
        DeliveryFactory(run=run, status=status)
    campaign_run_deliveries_final(run_id=run.id)
    run.refresh_from_db()
    assert (run.sent, run.failed, run.skipped) == (2, 2, 1)


# --- throttling -------------------------------------------------------------------------------------------


def test_throttled_batch_requeues_the_rest_for_later(make_deliveries, sink, settings):
    settings.DELIVERY_RATE_PER_DOMAIN = {"default": 1}
    settings.DELIVERY_THROTTLE_MAX_WAIT_SECONDS = 0
    settings.DELIVERY_RATE_PER_WORKSPACE = None
    deliveries = make_deliveries(3)
    result = delivery_send_batch(delivery_ids=ids(deliveries))
    assert (result.sent, result.deferred) == (1, 2)
    assert len(sink.messages) == 1
    later = Delivery.objects.filter(pk__in=ids(deliveries[1:]))
    assert all(d.status == "queued" and d.lease_until is None and d.send_at > timezone.now() for d in later)


# --- the task -------------------------------------------------------------------------------------------


def test_send_batch_task_is_a_late_acked_bulk_task_that_sends(make_deliveries, sink):
    deliveries = make_deliveries(2)
    assert (send_batch.queue, send_batch.acks_late, send_batch.ignore_result) == ("bulk", True, True)
    send_batch(ids(deliveries))
    assert len(sink.messages) == 2


# --- lease fencing ----------------------------------------------------------------------------------------


class LeaseExpiresOnSecondMessage(LocmemBackend):
    """While the first batch hands over its second message, its lease runs out and a second
    delivery_send_batch (another worker, in a thread) claims the rest of the rows and starts sending them;
    it is held inside its own first hand-off until the first batch has finished. `fencing` is the test's
    state: the ids, the time-machine traveller, the first batch's lease, what the second batch holds."""

    fencing: dict = {}

    def send_messages(self, messages):
        state = self.fencing
        if threading.current_thread().name == "test-background-thread":
            state["second_started"].set()
            assert state["first_done"].wait(timeout=20), "the first batch did not finish"
        elif len(mail.outbox) == 1 and "background" not in state:
            email = parseaddr(messages[0].to[0])[1]
            state["first_lease"] = Delivery.objects.get(pk__in=state["ids"], email=email).lease_until
            state["travel"].shift(timedelta(seconds=settings.DELIVERY_LEASE_SECONDS + 1))
            state["background"] = in_background(
                lambda: delivery_send_batch(delivery_ids=state["ids"]), stop=state["first_done"].set
            )
            state["background"].__enter__()
            assert state["second_started"].wait(timeout=20), "the second batch did not start sending"
            state["held"] = rows_of_other_claims(state["ids"], state["first_lease"])
        return super().send_messages(messages)


def rows_of_other_claims(delivery_ids, lease) -> dict:
    rows = Delivery.objects.filter(pk__in=delivery_ids, lease_until__isnull=False).exclude(lease_until=lease)
    return {r["id"]: r for r in rows.values("id", "status", "lease_until", "attempts", "sent_at", "message_id")}


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_lease_expired_and_was_reclaimed_sends_and_marks_nothing_more(make_deliveries, settings):
    settings.EMAIL_BACKEND = "tests.delivery.test_send_batch.LeaseExpiresOnSecondMessage"
    settings.DELIVERY_LEASE_SECONDS = 60
    settings.DELIVERY_MARK_EVERY = 2  # the second batch can claim only rows the first has not marked yet
    deliveries = make_deliveries(8)
    state = LeaseExpiresOnSecondMessage.fencing = {
        "ids": ids(deliveries),
        "second_started": threading.Event(),
        "first_done": threading.Event(),
    }
    with time_machine.travel(timezone.now(), tick=True) as travel:
        state["travel"] = travel
        try:
            delivery_send_batch(delivery_ids=ids(deliveries))
            # Whatever the first batch tried after losing its lease changed nothing the second one holds.
            assert state["held"], "the second batch claimed nothing"
            assert rows_of_other_claims(ids(deliveries), state["first_lease"]) == state["held"]
        finally:
            if "background" in state:
                state["background"].__exit__(None, None, None)
        # Rows the first batch gave back unattempted, if any, go with the next batch.
        delivery_send_batch(delivery_ids=ids(deliveries))

    assert sorted(parseaddr(m.to[0])[1] for m in mail.outbox) == sorted(d.email for d in deliveries)
    assert statuses(deliveries) == ["sent"] * 8
    sent_events = Counter(Event.objects.filter(type="sent").values_list("delivery_id", flat=True))
    assert sent_events == Counter(ids(deliveries))


# --- the progress row's statement, prepared once per database connection ------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_batch_on_a_fresh_database_connection_prepares_the_progress_statement_again(make_deliveries, sink):
    first, second = make_deliveries(2), make_deliveries(2)
    delivery_send_batch(delivery_ids=ids(first))
    connection.close()  # the server forgets the prepared statement with its session
    delivery_send_batch(delivery_ids=ids(second))
    assert statuses(first + second) == ["sent"] * 4
    assert not SendProgress.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_batches_taking_turns_on_two_threads_each_use_their_own_connection(make_deliveries, sink):
    groups = [make_deliveries(2) for _ in range(3)]
    first_done, second_done = threading.Event(), threading.Event()

    def thread_a():  # the first batch, then the third after thread b's
        delivery_send_batch(delivery_ids=ids(groups[0]))
        first_done.set()
        assert second_done.wait(timeout=20)
        delivery_send_batch(delivery_ids=ids(groups[2]))

    def thread_b():
        assert first_done.wait(timeout=20)
        delivery_send_batch(delivery_ids=ids(groups[1]))
        second_done.set()

    run_threads(thread_a, thread_b)
    assert statuses([d for group in groups for d in group]) == ["sent"] * 6
