"""Composing one campaign delivery's message; no database here (delivery.services owns state).

The parts come from the one message builder (delivery.content); the bytes from delivery.mime (a blueprint
per message content, bytes per recipient); the hand-off and its error classification from
delivery.transport. With a non-SMTP backend (an ESP through django-anymail, locmem in tests) the same
parts and headers go out as a Django EmailMultiAlternatives instead of bytes.
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from common.addresses import domain_of
from common.rendering import contact_context
from delivery import tracking
from delivery.content import MessageContent, add_tracking, render_parts
from delivery.mime import Envelope, MessageBlueprint, address
from delivery.signing import dkim_sign
from delivery.transport import Transport

ONE_CLICK = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}  # RFC 8058 §3.1


def new_message_id(delivery_id: int, from_email: str) -> str:
    return f"<delivery-{delivery_id}.{secrets.token_hex(8)}@{domain_of(from_email) or 'localhost'}>"


def bulk_headers(content: MessageContent) -> dict[str, str]:
    """The headers the bulk-sender rules ask of campaign mail, the same for every message of a campaign.

    List-Id (RFC 2919) names the campaign as a list under the sender's domain, so mailbox providers and
    filters group its messages. Feedback-ID is Gmail's feedback loop: campaign:workspace:sender, the last
    field our sender id; Gmail reports complaint rates per value, so no field may differ per message."""
    if content.campaign_id is None:
        return {}
    domain = domain_of(content.from_email) or "localhost"
    campaign = getattr(content.campaign_id, "hex", str(content.campaign_id))
    workspace = getattr(content.workspace_id, "hex", str(content.workspace_id))
    return {
        "List-Id": f"<{campaign}.{domain}>",
        "Feedback-ID": f"{campaign}:{workspace}:{settings.FEEDBACK_ID_SENDER}",
    }


def blueprint_for(content: MessageContent) -> MessageBlueprint:
    return MessageBlueprint(
        from_email=content.from_email,
        from_name=content.from_name,
        reply_to=content.reply_to,
        headers={**ONE_CLICK, **bulk_headers(content)},
    )


@dataclass
class OutgoingMessage:
    delivery_id: int
    to_email: str
    envelope: Envelope
    content: MessageContent
    blueprint: MessageBlueprint

    @property
    def message_id(self) -> str:
        return self.envelope.message_id


def compose(
    *, content: MessageContent, blueprint: MessageBlueprint, delivery_id: int, to_email: str, contact
) -> OutgoingMessage:
    """Render one recipient's message. Raises common.rendering.TemplateRenderError, or
    delivery.mime.HeaderInjection when a header would carry a line break."""
    links = tracking.unsubscribe_links(delivery_id, domain_of(content.from_email))
    context = contact_context(contact, content.substitution_data)
    context["unsubscribe_url"] = links.url
    parts = render_parts(content, context)
    name = " ".join(part for part in (contact.first_name, contact.last_name) if part) if contact else ""
    envelope = Envelope(
        to_email=to_email,
        to_name=name,
        subject=parts.subject,
        text=parts.text,
        html=add_tracking(parts.html, opens=content.track_opens, clicks=content.track_clicks, target=delivery_id),
        message_id=new_message_id(delivery_id, content.from_email),
        extra_headers=(("List-Unsubscribe", links.header),),
    )
    return OutgoingMessage(
        delivery_id=delivery_id, to_email=to_email, envelope=envelope, content=content, blueprint=blueprint
    )


def message_bytes(message: OutgoingMessage) -> bytes:
    """The finished MIME bytes for an SMTP hand-off (the blueprint's prepared parts plus this recipient's),
    DKIM-signed when the sender's domain has a key (delivery.signing): the bytes are signed as built, never
    parsed and rebuilt."""
    content = message.content
    return dkim_sign(
        message.blueprint.build(message.envelope), workspace_id=content.workspace_id, from_email=content.from_email
    )


def dry_run(message: OutgoingMessage) -> None:
    """A sandbox message: built to the last byte as hand_off would build it (so a sandbox run finds the
    same problems a live one would), then dropped (docs/decisions/061)."""
    message_bytes(message)


def hand_off(
    transport: Transport,
    message: OutgoingMessage,
    *,
    raw: bytes | None = None,
    before_body: Callable[[], None] | None = None,
) -> None:
    """Hand over `raw` (bytes from message_bytes, possibly transformed since, e.g. signed) when the transport
    takes bytes, else the message as a Django EmailMessage. Raises delivery.transport.SendError.
    `before_body` runs before the message can be accepted: over SMTP after the envelope and DATA were
    answered (delivery.transport.exchange), otherwise before the hand-off; what it raises stops the message."""
    if transport.raw_capable:
        if raw is None:
            raw = message_bytes(message)
        transport.send_raw(
            from_email=message.content.from_email, to_email=message.to_email, raw=raw, before_body=before_body
        )
    else:
        if before_body is not None:
            before_body()
        transport.send_email(as_email_message(message))


def as_email_message(message: OutgoingMessage) -> EmailMultiAlternatives:
    env = message.envelope
    content = message.content
    headers = {"Message-ID": env.message_id, **ONE_CLICK, **bulk_headers(content), **dict(env.extra_headers)}
    reply_to = [content.reply_to] if content.reply_to else None
    html_only = bool(env.html) and not env.text
    email = EmailMultiAlternatives(
        env.subject,
        env.html if html_only else env.text,
        address(content.from_name, content.from_email),
        [address(env.to_name, env.to_email)],
        headers=headers,
        reply_to=reply_to,
    )
    if html_only:
        email.content_subtype = "html"
    elif env.html:
        email.attach_alternative(env.html, "text/html")
    return email
