"""What an ESP's tracking event means in our vocabulary (django-anymail normalises the ESPs' own formats
into AnymailTrackingEvent; docs/decisions/042). Pure functions: the receiver passes the result to
delivery.services.esp_event_record."""

from dataclasses import dataclass, field
from datetime import datetime

from anymail.signals import AnymailTrackingEvent, EventType

from delivery.models import Event

E = Event.Type

# anymail's normalised types onto ours. Queued, sent, autoresponded, subscribed and unknown say nothing an
# integrator needs: our own `sent` comes from the send path.
TYPE_OF_ANYMAIL = {
    EventType.DELIVERED: E.DELIVERED,
    EventType.BOUNCED: E.BOUNCED,
    EventType.DEFERRED: E.DEFERRED,
    EventType.REJECTED: E.FAILED,
    EventType.FAILED: E.FAILED,
    EventType.COMPLAINED: E.COMPLAINED,
    EventType.OPENED: E.OPENED,
    EventType.CLICKED: E.CLICKED,
    EventType.UNSUBSCRIBED: E.UNSUBSCRIBED,
}
SUPPRESSING = {E.BOUNCED: "bounced", E.COMPLAINED: "complained", E.UNSUBSCRIBED: "unsubscribed"}


@dataclass
class EspEvent:
    esp: str
    event_id: str
    type: str
    recipient: str
    message_ids: set[str]
    occurred_at: datetime | None
    data: dict = field(default_factory=dict)

    @property
    def suppression_reason(self) -> str | None:
        """Hard bounces, complaints and unsubscribes suppress the address; a soft bounce is a `deferred`."""
        return SUPPRESSING.get(self.type)


def interpret(event: AnymailTrackingEvent, esp_name: str) -> EspEvent | None:
    kind = TYPE_OF_ANYMAIL.get(event.event_type)
    if kind is None or not event.recipient or not event.event_id:
        return None
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    if kind == E.BOUNCED and raw.get("bounce", {}).get("bounceType") == "Transient":
        # Amazon SES reports soft bounces as Bounce notifications too; anymail calls them all `bounced`.
        kind = E.DEFERRED
    data = {"esp": esp_name.lower().replace(" ", "_"), "esp_event_id": event.event_id}
    for key, value in (
        ("reason", event.mta_response or event.description),
        ("url", event.click_url),
        ("user_agent", event.user_agent),
    ):
        if value:
            data[key] = str(value)[:500]
    return EspEvent(
        esp=data["esp"],
        event_id=str(event.event_id)[:255],
        type=kind,
        recipient=event.recipient.strip(),
        message_ids=_message_ids(event, raw),
        occurred_at=event.timestamp,
        data=data,
    )


def _message_ids(event: AnymailTrackingEvent, raw: dict) -> set[str]:
    """Every spelling of the ids the event may know the message by: the ESP's message id (Mailgun's is our
    Message-ID header without its <>), and for Amazon SES the Message-ID header it echoes in `mail`."""
    found = [event.message_id]
    mail = raw.get("mail") if isinstance(raw.get("mail"), dict) else {}
    found.append((mail.get("commonHeaders") or {}).get("messageId"))
    found += [h.get("value") for h in mail.get("headers") or [] if str(h.get("name", "")).lower() == "message-id"]
    forms: set[str] = set()
    for value in found:
        if isinstance(value, str) and value.strip().strip("<>"):
            bare = value.strip().strip("<>")
            forms.update({bare, f"<{bare}>"})
    return forms
