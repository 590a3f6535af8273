"""Outbound webhooks (docs/architecture.md#webhooks, docs/decisions/040): endpoints, the messages each one is
owed, and every attempt to deliver one.

Nothing here is written per event by the send path: a periodic tick reads the event table after a cursor per
endpoint and turns what the endpoint subscribed to into `WebhookMessage` rows, which the delivery task sends.
"""

import uuid

from django.db import models

from accounts.models import Workspace


class WebhookEndpoint(models.Model):
    class Status(models.TextChoices):
        ENABLED = "enabled"
        DISABLED = "disabled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    # Dotted types (`email.sent`, `campaign.finished`) or the wildcards `email.*`, `campaign.*` and `*`.
    event_types = models.JSONField(default=list)
    # Signs every request (Standard Webhooks); shown to the integrator only in the creation answer.
    secret = models.CharField(max_length=80)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENABLED)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Every event with an id up to this one has been turned into this endpoint's messages (or did not match).
    cursor = models.BigIntegerField(default=0)
    # The circuit breaker: while the receiver fails, only the oldest due message is tried, at `retry_at`.
    failure_streak = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    # At most one delivery task per endpoint exists: whoever enqueues it takes this lease, and the task only
    # works while the lease it was given is still the endpoint's (a fencing token, as in delivery.models).
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="webhook_ws_created_idx")]

    def __str__(self) -> str:
        return self.url


class WebhookMessage(models.Model):
    """One event owed to one endpoint. Its `webhook_id` is the `webhook-id` header of every attempt, retries
    and replays alike, so a receiver can drop a duplicate (delivery is at least once)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # retried for the whole retry window without success

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    event_id = models.BigIntegerField(null=True, blank=True)  # null for a test message
    webhook_id = models.CharField(max_length=64)
    type = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Retries stop after this (WEBHOOK_RETRY_WINDOW_HOURS from creation, or from a replay).
    retry_until = models.DateTimeField()
    # What the next attempt is, for the log: a scheduled try, an operator's replay or test.
    next_trigger = models.CharField(max_length=16, default="schedule")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"],
                name="uniq_webhook_message_per_event",
                condition=models.Q(event_id__isnull=False),
            )
        ]
        indexes = [
            models.Index(
                fields=["endpoint", "id"],
                name="webhook_message_due_idx",
                condition=models.Q(status="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.webhook_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP request to an endpoint: the delivery log of the API and the admin."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"  # the first try or a retry
        REPLAY = "replay"
        TEST = "test"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="attempts")
    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="attempt_log")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)  # none: timeout, refused, no answer
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    response_body = models.CharField(max_length=1000, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["-attempted_at"]
        indexes = [models.Index(fields=["endpoint", "-attempted_at"], name="webhook_attempt_log_idx")]

    def __str__(self) -> str:
        return f"{self.status_code or self.error or '-'} @ {self.attempted_at:%Y-%m-%d %H:%M:%S}Z"


class EventWatermark(models.Model):
    """One row: up to which event id every event is committed (the cursors may pass it), and the candidate
    for the next one. Events commit out of id order on PostgreSQL; docs/decisions/040 says how this holds."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    settled_id = models.BigIntegerField(default=0)
    pending_id = models.BigIntegerField(default=0)
    # The transactions of this database that were open when pending_id was read (pg_stat_activity.backend_xid).
    pending_xids = models.JSONField(default=list)
    pending_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"settled up to event {self.settled_id}"
