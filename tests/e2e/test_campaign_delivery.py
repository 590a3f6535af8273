"""A scheduled campaign through the whole engine: beat, a default and a bulk Celery worker, real Redis, the
test database, and a real SMTP server whose inbox is what the assertions read."""

import time
from collections import Counter

import pytest

from campaigns import services as campaign_services
from campaigns.models import Campaign, CampaignRun
from delivery.models import Delivery
from tests.e2e.conftest import recipients_at, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def sent_campaign(mailing):
    return mailing.refresh().status in Campaign.FINISHED


def quiet(mailing) -> bool:
    """No claim in progress: nothing queued or in flight is held by a worker."""
    held = Delivery.objects.filter(
        campaign=mailing.campaign,
        status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING],
        lease_until__isnull=False,
    )
    return not held.exists()


def test_every_recipient_gets_one_personalised_message_at_the_scheduled_time(engine, sink, make_mailing):
    mailing = make_mailing(40, suppressed=3, unsubscribed=2)
    at = mailing.schedule_in(2)

    wait_for(lambda: sent_campaign(mailing), timeout=40, what="the campaign to be sent")

    assert sorted(recipients_at(sink)) == mailing.emails
    first_names = {c.email: c.first_name for c in mailing.contacts}
    for received in sink.messages:
        message = received.message
        email = received.rcpt_tos[0]
        assert message["Subject"] == f"Hi {first_names[email]}"
        assert (
            f"Hello {first_names[email]} Lopez" in message.get_body(preferencelist=("plain",)).get_content()
        )
        assert message["List-Unsubscribe"].startswith("<http")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Message-ID"]
    run = mailing.campaign.runs.get()
    assert run.launched_at >= at
    assert (run.total, run.sent) == (40, 40)


def test_suppressed_and_unsubscribed_contacts_get_nothing(engine, sink, make_mailing):
    mailing = make_mailing(5, suppressed=4, unsubscribed=4)
    mailing.schedule_in(1)

    wait_for(lambda: sent_campaign(mailing), timeout=40, what="the campaign to be sent")

    assert not {c.email for c in mailing.excluded} & set(recipients_at(sink))


def test_a_cancelled_schedule_sends_nothing(engine, sink, make_mailing):
    cancelled = make_mailing(10, name="cancelled")
    control = make_mailing(3, name="control")
    cancelled.schedule_in(1)
    # Scheduled after the cancelled one: once it has arrived, the dispatcher has passed the cancelled instant.
    control.schedule_in(2)
    campaign_services.campaign_cancel_schedule(
        workspace=cancelled.workspace, campaign_id=cancelled.campaign.id
    )

    wait_for(lambda: sent_campaign(control), timeout=40, what="the control campaign to be sent")

    assert sorted(recipients_at(sink)) == control.emails
    assert cancelled.refresh().status == Campaign.Status.DRAFT
    assert not cancelled.campaign.runs.exists()


def test_pause_holds_the_rest_and_resume_sends_each_remaining_recipient_once(engine, sink, make_mailing):
    sink.handler.delay = 0.02  # a slow mail server: about 50 messages a second
    mailing = make_mailing(300)
    mailing.schedule_in(1)
    wait_for(lambda: len(sink.messages) >= 20, timeout=40, what="the send to start")

    campaign_services.campaign_pause(workspace=mailing.workspace, campaign_id=mailing.campaign.id)
    wait_for(lambda: quiet(mailing), timeout=30, what="the batch in flight to finish")
    held = len(sink.messages)
    time.sleep(2.5)  # two dispatcher ticks and a reaper pass: a paused campaign must not move

    assert len(sink.messages) == held < 300
    campaign_services.campaign_resume(workspace=mailing.workspace, campaign_id=mailing.campaign.id)
    wait_for(lambda: sent_campaign(mailing), timeout=40, what="the resumed campaign to be sent")
    assert sorted(recipients_at(sink)) == mailing.emails


def test_stop_cancels_the_remaining_recipients_and_sends_no_more(engine, sink, make_mailing):
    sink.handler.delay = 0.02
    mailing = make_mailing(300)
    mailing.schedule_in(1)
    wait_for(lambda: len(sink.messages) >= 20, timeout=40, what="the send to start")

    campaign_services.campaign_stop(workspace=mailing.workspace, campaign_id=mailing.campaign.id)
    wait_for(lambda: quiet(mailing), timeout=30, what="the batch in flight to finish")
    stopped_at = len(sink.messages)
    time.sleep(2.5)

    assert len(sink.messages) == stopped_at < 300
    assert max(Counter(recipients_at(sink)).values()) == 1
    statuses = Counter(Delivery.objects.filter(campaign=mailing.campaign).values_list("status", flat=True))
    assert statuses == {"sent": stopped_at, "cancelled": 300 - stopped_at}
    assert mailing.refresh().status == Campaign.Status.CANCELLED
    assert mailing.campaign.runs.get().status == CampaignRun.Status.CANCELLED


def test_every_message_the_bulk_worker_sends_verifies_against_the_published_dkim_record(engine, sink, make_mailing):
    import dkim

    from accounts.models import SendingDomain
    from tests.accounts.dns_stub import dkim_dnsfunc

    mailing = make_mailing(10)
    mailing.schedule_in(1)

    wait_for(lambda: sent_campaign(mailing), timeout=40, what="the campaign to be sent")

    dnsfunc = dkim_dnsfunc(SendingDomain.objects.get(workspace=mailing.workspace, domain="mail.example.com"))
    assert len(sink.messages) == 10
    assert all(dkim.verify(received.data, dnsfunc=dnsfunc) for received in sink.messages)
    tampered = sink.messages[0].data.replace(b"\r\nSubject: Hi ", b"\r\nSubject: Win ", 1)
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)
