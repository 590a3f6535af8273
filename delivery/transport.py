"""The one way out for every message, campaign or transactional (docs/architecture.md, "Outbound layer").

`Transport` holds one connection to whatever settings.EMAIL_BACKEND names and turns everything that can go
wrong into a `SendError` that says whether it is worth retrying (temporary) or not (permanent), and whether
it is the recipient's fault (a bounce) or ours. `classify` is the only place that reads SMTP codes or ESP
exception types, so both kinds of mail follow one policy:

- SMTP 5xx to RCPT or DATA: permanent, the recipient's fault (bounce and suppress). RFC 5321 §4.2.1.
- SMTP 5xx to MAIL FROM: permanent, but our sender was refused, not the address (fail, do not suppress).
- SMTP 4xx, a lost connection, timeouts, an ESP's API errors: temporary (retry with `backoff_delay`).
- django-anymail's AnymailRecipientsRefused: the ESP refused every recipient, permanently.

Two ways to hand a message over: `send_raw` (campaign mail: MIME bytes assembled by delivery.mime over the
SMTP backend's open smtplib connection, ~10x cheaper than Django's EmailMessage) and `send_email` (a Django
EmailMessage: transactional mail with attachments, and any non-SMTP backend, because an ESP's HTTP API
wants fields, not bytes).

`send_raw` does the SMTP transaction itself (`exchange`) instead of smtplib's sendmail, for two reasons:
when the server offers PIPELINING (RFC 2920) MAIL, RCPT and DATA go in one write and their replies are read
in order afterwards (two round trips a message instead of four), and a caller can run `before_body` between
the 354 reply to DATA and the message: the moment after which the server may accept the message
(docs/decisions/101). Every reply is read and raised as the smtplib exception sendmail would raise, so
`classify` sees the same refusals as before.
"""

import contextlib
import re
import smtplib
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpEmailBackend
from django.core.mail.message import sanitize_address


class SendError(Exception):
    """`permanent`: do not try again. `recipient_fault`: the refusal is about the address (a bounce); False
    for a permanent refusal of our sender or our message."""

    def __init__(self, message: str, *, permanent: bool, recipient_fault: bool = True):
        super().__init__(message)
        self.permanent = permanent
        self.recipient_fault = recipient_fault


class ConnectionLost(SendError):
    def __init__(self, message: str):
        super().__init__(message, permanent=False)


def backoff_delay(attempts: int, *, base_seconds: float, max_seconds: float) -> timedelta:
    """Exponential backoff after the n-th failed attempt: base, 2x base, 4x base, ... capped."""
    return timedelta(seconds=min(max_seconds, base_seconds * 2 ** max(0, attempts - 1)))


def describe(code: int, reply, stage: str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{stage} {code} {text}".strip()[:400]


def classify(exc: Exception, *, stage: str = "SMTP") -> SendError:
    """The one classification of a failed hand-off (see the module docstring)."""
    if isinstance(exc, SendError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (450, b"refused"))
        return SendError(describe(code, reply, "RCPT"), permanent=code >= 500)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return SendError(
            describe(exc.smtp_code, exc.smtp_error, "MAIL FROM"),
            permanent=exc.smtp_code >= 500,
            recipient_fault=False,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return ConnectionLost(f"connection lost: {exc}"[:400])
    if isinstance(exc, smtplib.SMTPResponseException):
        return SendError(describe(exc.smtp_code, exc.smtp_error, stage), permanent=exc.smtp_code >= 500)
    if isinstance(exc, smtplib.SMTPException | OSError):
        return ConnectionLost(f"connection error: {exc}"[:400])
    # An ESP backend raises its own types (django-anymail): classify by name, so that no ESP package is
    # needed to import this module.
    kind = type(exc).__name__
    return SendError(f"{kind}: {exc}"[:400], permanent=kind == "AnymailRecipientsRefused")


class _BodyWithheld(Exception):
    """`before_body` raised: the message was not sent. Carries what it raised, past `classify`."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _command(text: str) -> str:
    # The check smtplib.SMTP.putcmd makes: an address with a line break must not inject a command.
    if "\r" in text or "\n" in text:
        raise ValueError(f"command and arguments contain prohibited newline characters: {text!r}")
    return text + "\r\n"


def exchange(
    smtp: smtplib.SMTP,
    from_addr: str,
    to_addrs: list[str],
    msg: bytes,
    *,
    before_body: Callable[[], None] | None = None,
) -> dict:
    """One mail transaction on an open smtplib connection, with smtplib.SMTP.sendmail's outcomes: returns
    the refused recipients when some were accepted, raises SMTPSenderRefused (MAIL), SMTPRecipientsRefused
    (every RCPT), SMTPDataError (DATA or the final dot), SMTPServerDisconnected. `before_body` runs after
    the server's 354 and before any byte of the message; if it raises, the message is not sent and
    _BodyWithheld carries the exception (the caller must then close the connection: after 354 only a
    closed connection ends the transaction without a message, RFC 5321 §4.1.1.4)."""
    smtp.ehlo_or_helo_if_needed()
    if not (from_addr.isascii() and all(addr.isascii() for addr in to_addrs)):
        # An internationalised address needs SMTPUTF8 (RFC 6531), which smtplib's sendmail negotiates.
        _run_before_body(before_body)
        return smtp.sendmail(from_addr, to_addrs, msg)
    size = f" size={len(msg)}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    lines = [
        _command(f"mail FROM:{smtplib.quoteaddr(from_addr)}{size}"),
        *(_command(f"rcpt TO:{smtplib.quoteaddr(addr)}") for addr in to_addrs),
        _command("data"),
    ]
    # RFC 2920 §3.1: MAIL and RCPT may go anywhere in a group, DATA only last; so the whole envelope is one
    # group. Without the extension each command waits for its reply (RFC 5321 §4.3), as smtplib does.
    pipelined = smtp.does_esmtp and smtp.has_extn("pipelining")
    if pipelined:
        smtp.send("".join(lines))
    sent = 0

    def reply() -> tuple[int, bytes]:
        nonlocal sent
        if not pipelined:
            smtp.send(lines[sent])
        sent += 1
        return smtp.getreply()

    def end_group() -> None:
        # RFC 2920 §3.1: the client must read the reply to every command of the group, DATA's included, and
        # "if the DATA was accepted the client SMTP should send a single dot" (an empty message to nobody:
        # every recipient was refused); then RSET starts the next transaction clean.
        # A connection lost meanwhile shows on the next message, as after smtplib's own RSET.
        with contextlib.suppress(smtplib.SMTPServerDisconnected):
            while pipelined and sent < len(lines):
                code, _ = reply()
                if code == 354:
                    smtp.send(b".\r\n")
                    smtp.getreply()
        smtp._rset()

    code, resp = reply()
    if code != 250:
        if code == 421:  # the server is closing the connection (RFC 5321 §3.8)
            smtp.close()
        else:
            end_group()
        raise smtplib.SMTPSenderRefused(code, resp, from_addr)
    refused = {}
    for addr in to_addrs:
        code, resp = reply()
        if code not in (250, 251):
            refused[addr] = (code, resp)
        if code == 421:
            smtp.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(to_addrs):
        end_group()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, resp = reply()
    if code != 354:
        if code == 421:
            smtp.close()
        else:
            smtp._rset()
        raise smtplib.SMTPDataError(code, resp)
    _run_before_body(before_body)
    # RFC 5321 §4.5.2: a line of the message that starts with a dot gets another one.
    body = _LEADING_DOT.sub(b"..", msg)
    smtp.send(body + (b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
    code, resp = smtp.getreply()
    if code != 250:
        if code == 421:
            smtp.close()
        else:
            smtp._rset()
        raise smtplib.SMTPDataError(code, resp)
    return refused


def _run_before_body(before_body: Callable[[], None] | None) -> None:
    if before_body is None:
        return
    try:
        before_body()
    except Exception as exc:  # noqa: BLE001 - handed back to the caller unclassified
        raise _BodyWithheld(exc) from exc


class Transport:
    """One connection for any number of messages. Use as a context manager or call open()/close()."""

    def __init__(self):
        self.backend = get_connection(fail_silently=False)
        self.raw_capable = type(self.backend) is SmtpEmailBackend

    def __enter__(self) -> "Transport":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        try:
            self.backend.open()
        except Exception as exc:  # noqa: BLE001 - classified below
            raise ConnectionLost(f"could not connect to the mail server: {exc}"[:400]) from None

    def close(self) -> None:
        # Closing (QUIT) after the server accepted a message must not turn into a refusal and a resend;
        # a broken connection must not hide the outcome either.
        with contextlib.suppress(Exception):
            self.backend.close()

    def send_raw(
        self,
        *,
        from_email: str,
        to_email: str | list[str],
        raw: bytes,
        before_body: Callable[[], None] | None = None,
    ) -> None:
        """Hand over MIME bytes (SMTP backend only: `raw_capable`). `before_body` runs once the server has
        said yes to the envelope and DATA, before the message goes (see `exchange`); what it raises comes
        out as it is, the message unsent."""
        if self.backend.connection is None:
            self.open()
        to = [to_email] if isinstance(to_email, str) else to_email
        try:
            exchange(self.backend.connection, from_email, to, raw, before_body=before_body)
        except _BodyWithheld as withheld:
            # After the 354 a QUIT would be read as a line of the message: closing the socket is the only
            # way to end the transaction with nothing delivered (RFC 5321 §4.1.1.4).
            with contextlib.suppress(Exception):
                self.backend.connection.close()
            self.backend.connection = None
            raise withheld.cause from None
        except Exception as exc:  # noqa: BLE001 - classified
            error = classify(exc, stage="DATA")
            if isinstance(error, ConnectionLost):
                self._drop()
            raise error from None

    def send_email(self, email: EmailMessage, *, sign: Callable[[bytes], bytes] | None = None) -> None:
        """Hand over a Django EmailMessage through the configured backend (SMTP or an ESP). With `sign` and
        the SMTP backend, the bytes Django's SMTP backend would send go through `sign` first (DKIM), with the
        same envelope; an ESP builds its own message, so `sign` does not apply there."""
        if sign is not None and self.raw_capable:
            # What django.core.mail.backends.smtp.EmailBackend._send does, with the signature added.
            encoding = email.encoding or settings.DEFAULT_CHARSET
            raw = sign(email.message().as_bytes(linesep="\r\n"))
            self.send_raw(
                from_email=sanitize_address(email.from_email, encoding),
                to_email=[sanitize_address(addr, encoding) for addr in email.recipients()],
                raw=raw,
            )
            return
        email.connection = self.backend
        try:
            self.backend.send_messages([email])
        except Exception as exc:  # noqa: BLE001 - classified
            error = classify(exc)
            if isinstance(error, ConnectionLost) and self.raw_capable:
                self._drop()
            raise error from None

    def _drop(self) -> None:
        # The next message reconnects; a half-dead connection must not be reused.
        self.close()
        self.backend.connection = None
