"""Transactional messages (docs/architecture.md#transactional): an outbox in PostgreSQL. See docs/decisions/012.

A request with several `to` recipients is one batch of messages, one per `to` address, each carrying the
request's cc, bcc, reply-to, headers and attachments. Status moves only by conditional UPDATEs
(`... WHERE status = X`), so a redelivered task or a second dispatcher finds nothing to do:

    scheduled -> queued -> sending -> sent (-> delivered | bounced, from ESP events)
    scheduled -> cancelled
    sending -> queued (SMTP 4xx, later send_at) | bounced (5xx) | failed (attempts exhausted, or the
    worker died during the hand-off: delivery uncertain, never resent)
"""

import uuid

from django.conf import settings
from django.db import models

from accounts.models import Workspace
from delivery.content import has_body
from delivery.models import Event


class TransactionalMessage(models.Model):
    class Priority(models.TextChoices):
        HIGH = "high"
        LOW = "low"

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        FAILED = "failed"
        CANCELLED = "cancelled"

    QUEUE_OF_PRIORITY = {Priority.HIGH: "tx_high", Priority.LOW: "tx_low"}

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    batch_id = models.UUIDField(db_index=True)
    priority = models.CharField(max_length=4, choices=Priority.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    sandbox = models.BooleanField(
        default=False, help_text="Accepted with a sandbox key: never handed to SMTP."
    )

    from_email = models.CharField(max_length=254)
    from_name = models.CharField(max_length=200, blank=True)
    to_email = models.CharField(max_length=254)
    to_name = models.CharField(max_length=200, blank=True)
    # Lists of {"email", "name"}; reply_to is one such object or null.
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    reply_to = models.JSONField(null=True, blank=True)
    subject = models.CharField(max_length=998)
    html = models.TextField(blank=True)
    text = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    # [{"filename", "content_type", "content" (base64), "size" (decoded bytes)}]
    attachments = models.JSONField(default=list, blank=True)
    customer_reference = models.CharField(max_length=200, blank=True, db_index=True)
    # Opt-in, per request: transactional mail is often personal (a password reset), so nothing is tracked
    # unless the integrator asks (docs/decisions/016).
    track_opens = models.BooleanField(default=False)
    track_clicks = models.BooleanField(default=False)
    list_unsubscribe = models.BooleanField(
        default=False, help_text="Carries List-Unsubscribe and one-click unsubscribe headers (RFC 8058)."
    )

    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="As requested; null = send now.")
    send_at = models.DateTimeField(help_text="When the next attempt is due.")
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its send task was last enqueued."
    )
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the current hand-off started.")
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Indexed: an ESP's tracking webhook finds the message by it (delivery.services.esp_event_record).
    smtp_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            # The dispatcher's two claims and the reaper's scan, each on a small partial index.
            models.Index(
                fields=["send_at"], name="tx_scheduled_due_idx", condition=models.Q(status="scheduled")
            ),
            models.Index(fields=["send_at"], name="tx_queued_due_idx", condition=models.Q(status="queued")),
            models.Index(fields=["claimed_at"], name="tx_sending_idx", condition=models.Q(status="sending")),
            models.Index(fields=["workspace", "-created_at"], name="tx_workspace_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.to_email}: {self.subject[:40]} ({self.status})"

    @staticmethod
    def request_problems(*, to: list, cc: list, bcc: list, html: str, text: str) -> dict[str, list[str]]:
        """What a send request must be, whoever makes it (the API's serializer, transactional_send): at
        least one `to` address, at most TRANSACTIONAL_MAX_RECIPIENTS in to, cc and bcc together, and a body
        (html, text or both: delivery.content.has_body). The problems by field; empty when there are none."""
        problems: dict[str, list[str]] = {}
        count, limit = len(to) + len(cc) + len(bcc), settings.TRANSACTIONAL_MAX_RECIPIENTS
        if not to:
            problems["to"] = ["Give at least one address in to."]
        elif count > limit:
            problems["to"] = [f"At most {limit} recipients in to, cc and bcc together; this request has {count}."]
        if not has_body(html=html, text=text):
            problems["html"] = ["Give html, text or both."]
        return problems

    @property
    def queue(self) -> str:
        return self.QUEUE_OF_PRIORITY[self.priority]

    @property
    def sender(self) -> dict:
        return {"email": self.from_email, "name": self.from_name}

    @property
    def recipient(self) -> dict:
        return {"email": self.to_email, "name": self.to_name}

    @property
    def events(self):
        """Its log in the one event table (delivery.models.Event), oldest first."""
        return Event.objects.filter(workspace_id=self.workspace_id, message_id=str(self.pk)).order_by("id")
