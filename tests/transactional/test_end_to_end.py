"""Through real Celery worker subprocesses (`celery -A config worker -Q ...`) to a real SMTP sink."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from audience.models import Contact
from campaigns.models import Campaign
from common.smtp_sink import SmtpSink
from delivery.models import Delivery
from delivery.tasks import send_batch
from tests.e2e.conftest import Process, database_url, wait_for
from tests.factories import CampaignFactory, CampaignRunFactory
from transactional.models import TransactionalMessage
from transactional.services import transactional_dispatch_due

from .conftest import attachment, body, post, queue_length

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ARGS = [
    "--pool",
    "prefork",
    "--concurrency",
    "1",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
    "--loglevel",
    "INFO",
]


@pytest.fixture
def smtp():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def start_worker(transactional_db, smtp):
    env_base = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "TEST_EMAIL_URL": f"smtp://{smtp.host}:{smtp.port}",
        "DB_CONN_MAX_AGE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    started: list[Process] = []

    def start(queue: str) -> Process:
        import os

        env = {**os.environ, **env_base}
        env.pop("EMAIL_BACKEND", None)
        name = f"tx-{queue}-{uuid.uuid4().hex[:6]}"
        process = Process(
            f"transactional-{queue}", ["worker", "-Q", queue, "-n", f"{name}@%h", *WORKER_ARGS], env
        )
        started.append(process.start())
        from config.celery import app

        wait_for(
            lambda: app.control.ping(destination=[f"{name}@{_hostname()}"], timeout=0.5),
            timeout=60,
            what=f"the {queue} worker to start",
            every=0.5,
        )
        return process

    yield start
    for process in started:
        process.stop()


def _hostname() -> str:
    import socket

    return socket.gethostname()


def received_by(sink, address: str):
    return [m for m in list(sink.messages) if address in [r.lower() for r in m.rcpt_tos]]


def test_high_priority_message_reaches_the_sink_with_cc_bcc_reply_to_and_attachment(
    api, domain, smtp, start_worker
):
    start_worker("tx_high")
    data = body(
        cc=[{"email": "cc@example.org", "name": "Carbon Copy"}],
        bcc=[{"email": "audit@example.org"}],
        reply_to={"email": "help@example.org", "name": "Help Desk"},
        headers={"X-Ticket": "T-42"},
        attachments=[attachment(b"%PDF-1.4 the receipt")],
    )

    response = post(api, data, priority="high")
    assert response.status_code == 202
    wait_for(lambda: smtp.messages, timeout=30, what="the message at the sink")

    [received] = smtp.messages
    assert sorted(r.lower() for r in received.rcpt_tos) == [
        "ana@example.org",
        "audit@example.org",
        "cc@example.org",
    ]
    message = received.message
    assert message["To"] == "Ana Lopez <ana@example.org>"
    assert message["Cc"] == "Carbon Copy <cc@example.org>"
    assert message["Bcc"] is None
    assert message["Reply-To"] == "Help Desk <help@example.org>"
    assert message["X-Ticket"] == "T-42"
    stored = TransactionalMessage.objects.get()
    assert message["Message-ID"] == stored.smtp_message_id
    [part] = [p for p in message.iter_attachments()]
    assert part.get_filename() == "receipt.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == b"%PDF-1.4 the receipt"
    wait_for(lambda: TransactionalMessage.objects.get().status == "sent", timeout=10, what="the sent mark")
    assert list(stored.events.values_list("type", flat=True)) == ["queued", "sent"]


def test_scheduled_message_is_sent_at_its_time_by_the_worker(api, domain, smtp, start_worker):
    start_worker("tx_low")
    at = datetime.now(UTC) + timedelta(seconds=3)
    response = post(api, body(scheduled_at=at.isoformat()), priority="low")
    assert response.status_code == 202

    assert transactional_dispatch_due().scheduled_queued == 1
    wait_for(lambda: smtp.messages, timeout=30, what="the scheduled message at the sink")

    assert datetime.now(UTC) >= at
    wait_for(lambda: TransactionalMessage.objects.get().status == "sent", timeout=10, what="the sent mark")
    assert TransactionalMessage.objects.get().sent_at >= at


def test_a_high_priority_message_overtakes_a_bulk_backlog(api, domain, workspace, smtp, start_worker):
    backlog = 3000
    campaign = CampaignFactory(
        workspace=workspace,
        status=Campaign.Status.SENDING,
        from_email="news@mail.example.com",
        tracking={"opens": False, "clicks": False},
    )
    run = CampaignRunFactory(campaign=campaign)
    contacts = Contact.objects.bulk_create(
        Contact(workspace=workspace, email=f"bulk{i}@example.net", first_name="Bo") for i in range(backlog)
    )
    now = datetime.now(UTC)
    deliveries = Delivery.objects.bulk_create(
        Delivery(workspace=workspace, run=run, campaign=campaign, contact=c, email=c.email, send_at=now)
        for c in contacts
    )
    for delivery in deliveries:
        send_batch.apply_async(args=[[delivery.id]], queue="bulk")
    start_worker("bulk")
    start_worker("tx_high")
    wait_for(lambda: len(smtp.messages) >= 20, timeout=60, what="the bulk backlog to start draining")

    response = post(api, body(to=[{"email": "reset@example.org"}]), priority="high")
    assert response.status_code == 202
    wait_for(lambda: received_by(smtp, "reset@example.org"), timeout=60, what="the high-priority message")

    arrived = [i for i, m in enumerate(list(smtp.messages)) if "reset@example.org" in m.rcpt_tos][0]
    # Ordering, not a wall-clock bound: it arrived while most of the bulk work was still waiting.
    assert arrived < backlog // 2, f"arrived after {arrived} bulk messages"
    assert queue_length("bulk") > 0
    assert Delivery.objects.filter(status="queued").count() > backlog // 2


def test_message_sent_by_the_worker_verifies_against_the_published_dkim_record(api, domain, smtp, start_worker):
    import dkim

    from tests.accounts.dns_stub import dkim_dnsfunc

    start_worker("tx_high")
    data = body(cc=[{"email": "cc@example.org"}], attachments=[attachment()], headers={"X-Ticket": "T-42"})
    assert post(api, data, priority="high").status_code == 202
    wait_for(lambda: smtp.messages, timeout=30, what="the message at the sink")

    [received] = smtp.messages
    dnsfunc = dkim_dnsfunc(domain)
    assert dkim.verify(received.data, dnsfunc=dnsfunc)
    assert not dkim.verify(received.data.replace(b"Subject: Reset", b"Subject: Unset", 1), dnsfunc=dnsfunc)
