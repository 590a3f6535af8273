"""delivery.transport's SMTP exchange against a real local server (tests.smtp_server), one that offers
PIPELINING (RFC 2920) and one that does not: what reached the wire, and how each refusal is classified."""

import pytest
from django.db import connection

from delivery.models import Delivery, SendProgress
from delivery.services import delivery_send_batch
from delivery.transport import SendError, Transport
from tests.smtp_server import SmtpServer

RAW = b"Subject: hi\r\n\r\nHello\r\n.leading dot\r\n"
SENDER = "news@mail.example.com"


def serve(settings, *, pipelining: bool):
    """The server, and Django's SMTP backend pointed at it."""
    with SmtpServer(pipelining=pipelining) as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = smtp.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 10
        yield smtp


@pytest.fixture
def server(settings):
    yield from serve(settings, pipelining=True)


@pytest.fixture
def plain_server(settings):
    yield from serve(settings, pipelining=False)


def send(to: str = "ann@example.org", **kwargs) -> None:
    with Transport() as transport:
        transport.send_raw(from_email=SENDER, to_email=to, raw=RAW, **kwargs)


def refusal(to: str = "ann@example.org", **kwargs) -> SendError:
    with pytest.raises(SendError) as caught:
        send(to, **kwargs)
    return caught.value


def envelope_read(server: SmtpServer) -> bytes:
    return next(read for read in server.reads if read.lower().startswith(b"mail from"))


# --- with PIPELINING ------------------------------------------------------------------------------------


def test_envelope_and_data_go_in_one_write_when_the_server_offers_pipelining(server):
    send()
    assert envelope_read(server).lower() == (
        b"mail from:<news@mail.example.com> size=%d\r\nrcpt to:<ann@example.org>\r\ndata\r\n" % len(RAW)
    )


def test_pipelined_message_arrives_whole_with_its_leading_dot_restored(server):
    send()
    assert [(m.mail_from, m.rcpt_tos, m.data) for m in server.messages] == [(SENDER, ["ann@example.org"], RAW)]


def test_rejected_rcpt_sends_no_message_body(server):
    server.reject_rcpt["gone@example.org"] = "550 5.1.1 No such user"
    refusal("gone@example.org")
    assert server.messages == []
    assert not any(b"Hello" in line for line in server.lines)
    assert server.commands[-3:] == ["DATA", "RSET", "QUIT"]


def test_rejected_rcpt_is_a_permanent_bounce_as_without_pipelining(server):
    server.reject_rcpt["gone@example.org"] = "550 5.1.1 No such user"
    error = refusal("gone@example.org")
    assert (error.permanent, error.recipient_fault, str(error)) == (True, True, "RCPT 550 5.1.1 No such user")


def test_rcpt_deferred_with_4xx_is_temporary(server):
    server.reject_rcpt["busy@example.org"] = "451 4.7.1 Try again later"
    error = refusal("busy@example.org")
    assert (error.permanent, str(error)) == (False, "RCPT 451 4.7.1 Try again later")


def test_refused_sender_is_permanent_but_not_the_recipients_fault(server):
    server.reject_mail = "553 5.7.1 Sender not allowed"
    error = refusal()
    assert (error.permanent, error.recipient_fault) == (True, False)
    assert server.messages == []


def test_server_that_accepts_data_without_recipients_gets_a_lone_dot(server):
    # RFC 2920 §3.1: "if the DATA was accepted the client SMTP should send a single dot".
    server.reject_rcpt["gone@example.org"] = "550 5.1.1 No such user"
    server.accept_data_without_recipients = True
    refusal("gone@example.org")
    assert server.lines[server.lines.index(b"data") + 1 :] == [b".", b"rset", b"quit"]


def test_the_connection_serves_the_next_message_after_a_refused_one(server):
    server.reject_rcpt["gone@example.org"] = "550 5.1.1 No such user"
    with Transport() as transport:
        with pytest.raises(SendError):
            transport.send_raw(from_email=SENDER, to_email="gone@example.org", raw=RAW)
        transport.send_raw(from_email=SENDER, to_email="ann@example.org", raw=RAW)
    assert ([m.rcpt_tos for m in server.messages], server.connections) == ([["ann@example.org"]], 1)


def test_before_body_runs_after_the_354_and_before_the_message(server):
    seen = []
    send(before_body=lambda: seen.append((list(server.lines), list(server.messages))))
    lines, messages = seen[0]
    assert (lines[-1], messages) == (b"data", [])


def test_what_before_body_raises_comes_out_as_it_is_and_no_message_goes(server):
    def refuse():
        raise LookupError("lease lost")

    with pytest.raises(LookupError), Transport() as transport:
        transport.send_raw(from_email=SENDER, to_email="ann@example.org", raw=RAW, before_body=refuse)
    assert server.messages == []
    assert not any(b"Hello" in line for line in server.lines)


def test_after_before_body_raised_the_next_message_goes_on_a_new_connection(server):
    with Transport() as transport:
        with pytest.raises(LookupError):
            transport.send_raw(from_email=SENDER, to_email="ann@example.org", raw=RAW, before_body=lambda: {}["lease"])
        transport.send_raw(from_email=SENDER, to_email="bob@example.org", raw=RAW)
    assert ([m.rcpt_tos for m in server.messages], server.connections) == ([["bob@example.org"]], 2)


def test_some_recipients_refused_the_message_goes_to_the_rest(server):
    server.reject_rcpt["gone@example.org"] = "550 5.1.1 No such user"
    send(["gone@example.org", "ann@example.org"])
    assert [m.rcpt_tos for m in server.messages] == [["ann@example.org"]]


# --- without PIPELINING ---------------------------------------------------------------------------------


def test_each_command_waits_for_its_reply_when_pipelining_is_not_offered(plain_server):
    send()
    reads = plain_server.reads[plain_server.reads.index(envelope_read(plain_server)) :][:3]
    assert [read.lower() for read in reads] == [
        b"mail from:<news@mail.example.com> size=%d\r\n" % len(RAW),
        b"rcpt to:<ann@example.org>\r\n",
        b"data\r\n",
    ]


def test_message_arrives_whole_without_pipelining(plain_server):
    send()
    assert [m.data for m in plain_server.messages] == [RAW]


def test_rejected_rcpt_without_pipelining_sends_no_data_command(plain_server):
    plain_server.reject_rcpt["gone@example.org"] = "550 5.1.1 No such user"
    error = refusal("gone@example.org")
    assert (error.permanent, error.recipient_fault) == (True, True)
    assert plain_server.commands[-3:] == ["RCPT", "RSET", "QUIT"]


# --- the send loop over a pipelining server -------------------------------------------------------------


def test_a_batch_over_a_pipelining_server_sends_each_message_once_and_bounces_the_refused(server, make_deliveries):
    deliveries = make_deliveries(4)
    server.reject_rcpt[deliveries[1].email] = "550 5.1.1 No such user"
    delivery_send_batch(delivery_ids=[d.id for d in deliveries])
    assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(d.email for i, d in enumerate(deliveries) if i != 1)
    assert [Delivery.objects.get(pk=d.pk).status for d in deliveries] == ["sent", "bounced", "sent", "sent"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_progress_row_is_taken_mid_exchange_sends_no_further_message(server, make_deliveries):
    """The reaper deletes a dead claim's progress row first (docs/decisions/100); here it does so while the
    server holds the first message, so the second message's progress UPDATE, already sent when its envelope
    goes, finds nothing: the batch must stop before that message's body."""
    deliveries = make_deliveries(3)

    def reap(received) -> None:
        SendProgress.objects.all().delete()
        connection.close()  # this thread's own connection

    server.on_message = reap
    delivery_send_batch(delivery_ids=[d.id for d in deliveries])
    assert [m.rcpt_tos for m in server.messages] == [[deliveries[0].email]]
    # The second envelope was answered, then the connection closed: no line of the message, not even a QUIT
    # (after 354 it would be one).
    assert server.lines[-2:] == [f"rcpt TO:<{deliveries[1].email}>".encode(), b"data"]
