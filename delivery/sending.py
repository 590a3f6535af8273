"""Composing and handing off one campaign message; no database here (delivery.services owns state).

Two transports behind one interface, chosen by settings.EMAIL_BACKEND:

- Django's SMTP backend: the fast path. The message is assembled by delivery.mime (a blueprint per
  campaign, bytes per recipient) and handed to the backend's open smtplib connection with
  `sendmail(from, [to], bytes)`; Django's EmailMessage would cost ~10x the CPU per message.
- Any other backend (locmem, console, file, django-anymail ESPs): an EmailMultiAlternatives with the same
  headers through `backend.send_messages`, because an ESP's HTTP API wants fields, not MIME bytes.

Each transport turns what went wrong into a SendError saying whether it is temporary (retry later) or
permanent (bounce), so the service has one policy for both.
"""

import contextlib
import secrets
import smtplib
from dataclasses import dataclass

from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpEmailBackend

from common.rendering import contact_context, render
from delivery import tracking
from delivery.mime import Envelope, MessageBlueprint, address


class SendError(Exception):
    """`permanent`: the receiving side refused this recipient for good (5xx): bounce and suppress.
    `recipient_fault` is False for a 5xx that says nothing about the address (our sender refused)."""

    def __init__(self, message: str, *, permanent: bool, recipient_fault: bool = True):
        super().__init__(message)
        self.permanent = permanent
        self.recipient_fault = recipient_fault


class ConnectionLost(SendError):
    def __init__(self, message: str):
        super().__init__(message, permanent=False)


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


def new_message_id(delivery_id: int, from_email: str) -> str:
    return f"<delivery-{delivery_id}.{secrets.token_hex(8)}@{domain_of(from_email) or 'localhost'}>"


@dataclass
class CampaignContent:
    """One campaign's sources and sending identity, prepared once per batch."""

    subject: str
    preheader: str
    html: str
    text: str
    from_email: str
    from_name: str
    reply_to: str
    track_opens: bool
    track_clicks: bool
    substitution_data: dict
    blueprint: MessageBlueprint

    @classmethod
    def of(cls, campaign) -> "CampaignContent":
        template = campaign.template
        own_body = bool(campaign.html or campaign.text)
        tracking_config = campaign.tracking if isinstance(campaign.tracking, dict) else {}
        return cls(
            subject=campaign.subject or (template.subject if template else ""),
            preheader=campaign.preheader,
            html=campaign.html if own_body or not template else template.html,
            text=campaign.text if own_body or not template else template.text,
            from_email=campaign.from_email,
            from_name=campaign.from_name,
            reply_to=campaign.reply_to,
            track_opens=bool(tracking_config.get("opens")),
            track_clicks=bool(tracking_config.get("clicks")),
            substitution_data=campaign.substitution_data
            if isinstance(campaign.substitution_data, dict)
            else {},
            blueprint=MessageBlueprint(
                from_email=campaign.from_email,
                from_name=campaign.from_name,
                reply_to=campaign.reply_to,
                headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            ),
        )


@dataclass
class OutgoingMessage:
    delivery_id: int
    to_email: str
    envelope: Envelope
    content: CampaignContent

    @property
    def message_id(self) -> str:
        return self.envelope.message_id


def compose(*, content: CampaignContent, delivery_id: int, to_email: str, contact) -> OutgoingMessage:
    """Render one recipient's message. Raises common.rendering.TemplateRenderError."""
    links = tracking.unsubscribe_links(delivery_id, domain_of(content.from_email))
    context = contact_context(contact, content.substitution_data)
    context["unsubscribe_url"] = links.url
    subject = render(content.subject, context, html=False)
    if "\r" in subject or "\n" in subject:
        subject = " ".join(subject.split())
    text = render(content.text, context, html=False)
    body = render(content.html, context, html=True)
    if body:
        if content.preheader:
            body = tracking.add_preheader(body, render(content.preheader, context, html=True))
        if content.track_clicks:
            body = tracking.rewrite_links(body, delivery_id)
        if content.track_opens:
            body = tracking.add_open_pixel(body, delivery_id)
    name = " ".join(part for part in (contact.first_name, contact.last_name) if part) if contact else ""
    envelope = Envelope(
        to_email=to_email,
        to_name=name,
        subject=subject,
        text=text,
        html=body,
        message_id=new_message_id(delivery_id, content.from_email),
        extra_headers=(("List-Unsubscribe", links.header),),
    )
    return OutgoingMessage(delivery_id=delivery_id, to_email=to_email, envelope=envelope, content=content)


class Transport:
    """One connection for a whole batch. `send` raises SendError; `open` raises SendError(temporary)
    when no connection can be made."""

    def __init__(self):
        self.backend = get_connection()
        self.fast = type(self.backend) is SmtpEmailBackend

    def open(self) -> None:
        try:
            self.backend.open()
        except (smtplib.SMTPException, OSError) as exc:
            raise ConnectionLost(f"could not connect to the mail server: {exc}") from None

    def close(self) -> None:
        # Closing a broken connection must not hide the batch's outcome.
        with contextlib.suppress(Exception):
            self.backend.close()

    def send(self, message: OutgoingMessage) -> None:
        if self.fast:
            self._send_smtp(message)
        else:
            self._send_backend(message)

    def _send_smtp(self, message: OutgoingMessage) -> None:
        if self.backend.connection is None:
            self.open()
        raw = message.content.blueprint.build(message.envelope)
        try:
            self.backend.connection.sendmail(message.content.from_email, [message.to_email], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (450, b"refused"))
            raise _smtp_error(code, reply, "RCPT") from None
        except smtplib.SMTPSenderRefused as exc:
            raise SendError(
                _describe(exc.smtp_code, exc.smtp_error, "MAIL FROM"),
                permanent=exc.smtp_code >= 500,
                recipient_fault=False,
            ) from None
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise ConnectionLost(f"connection lost: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(exc.smtp_code, exc.smtp_error, "DATA") from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise ConnectionLost(f"connection error: {exc}") from None

    def _drop(self) -> None:
        # The next message reconnects (see _send_smtp); a half-dead connection must not be reused.
        self.close()
        self.backend.connection = None

    def _send_backend(self, message: OutgoingMessage) -> None:
        env = message.envelope
        content = message.content
        headers = {"Message-ID": env.message_id, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        headers.update(env.extra_headers)
        sender = address(content.from_name, content.from_email)
        to = address(env.to_name, env.to_email)
        reply_to = [content.reply_to] if content.reply_to else None
        if env.text or not env.html:
            email = EmailMultiAlternatives(
                env.subject,
                env.text,
                sender,
                [to],
                headers=headers,
                reply_to=reply_to,
                connection=self.backend,
            )
            if env.html:
                email.attach_alternative(env.html, "text/html")
        else:
            email = EmailMultiAlternatives(
                env.subject,
                env.html,
                sender,
                [to],
                headers=headers,
                reply_to=reply_to,
                connection=self.backend,
            )
            email.content_subtype = "html"
        try:
            self.backend.send_messages([email])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (450, b"refused"))
            raise _smtp_error(code, reply, "RCPT") from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(exc.smtp_code, exc.smtp_error, "SMTP") from None
        except Exception as exc:  # noqa: BLE001 - an ESP backend raises its own types; classify by name
            raise _backend_error(exc) from None


def _describe(code: int, reply, stage: str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{stage} {code} {text}".strip()[:400]


def _smtp_error(code: int, reply, stage: str) -> SendError:
    return SendError(_describe(code, reply, stage), permanent=code >= 500)


def _backend_error(exc: Exception) -> SendError:
    # django-anymail: AnymailRecipientsRefused means the ESP refused every recipient (invalid, bounced or
    # on its own suppression list): a permanent refusal. Every other error (API down, rate limited,
    # timeouts) is worth retrying; the attempt limit ends the hopeless ones.
    kind = type(exc).__name__
    message = f"{kind}: {exc}"[:400]
    return SendError(message, permanent=kind == "AnymailRecipientsRefused")
