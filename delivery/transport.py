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
"""

import contextlib
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

    def send_raw(self, *, from_email: str, to_email: str | list[str], raw: bytes) -> None:
        """Hand over MIME bytes (SMTP backend only: `raw_capable`)."""
        if self.backend.connection is None:
            self.open()
        try:
            self.backend.connection.sendmail(from_email, [to_email] if isinstance(to_email, str) else to_email, raw)
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
