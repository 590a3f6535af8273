from django.db import models

from accounts.models import Workspace


class Delivery(models.Model):
    """One recipient of one campaign run: the per-recipient schedule (docs/architecture.md#delivery-engine).

    State moves only by conditional UPDATEs (`... WHERE status = X`), so a redelivered task finds its rows
    already claimed or sent and does nothing twice:
    queued -> sending -> sent | failed | bounced | uncertain | queued (4xx retry, later `send_at`);
    queued -> skipped | cancelled | failed (the message could not be rendered).

    Claiming (delivery.services.delivery_send_batch) does not change the status: a claimed row stays
    `queued` with `lease_until` set to the claiming call's lease. That value doubles as the claim's fencing
    token: every later write of the batch says `WHERE lease_until = <its lease>`, so once a lease has
    expired and another call has re-claimed the row, the first call can no longer touch it. A row is
    `sending` only for the one message a worker is handing to the mail server right now; so after a
    crash, `queued` rows with an expired lease were never attempted (safe to send again) and `sending`
    rows with an expired lease are the in-flight ones (at most one per killed batch), for the reaper to
    flag `uncertain` or retry by policy.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        BOUNCED = "bounced"
        SKIPPED = "skipped"
        CANCELLED = "cancelled"
        UNCERTAIN = "uncertain"

    FINAL = (Status.SENT, Status.FAILED, Status.BOUNCED, Status.SKIPPED, Status.CANCELLED, Status.UNCERTAIN)

    id = models.BigAutoField(primary_key=True)
    # The fan-out writes up to millions of rows per run, all with the same workspace, run and campaign,
    # which it has just read under lock: a foreign-key check per row on them was a quarter of the insert
    # time (bench/fanout, EXPLAIN ANALYZE), so those three are not enforced by the database (Django still
    # cascades deletes) and workspace and run carry no index of their own (uniq (run, contact) serves run).
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    run = models.ForeignKey(
        "campaigns.CampaignRun",
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="deliveries", db_constraint=False
    )
    contact = models.ForeignKey("audience.Contact", null=True, on_delete=models.SET_NULL, related_name="deliveries")
    email = models.EmailField(max_length=254)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    send_at = models.DateTimeField()
    send_reason = models.CharField(max_length=200, blank=True, help_text="Why this recipient gets this time.")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    error = models.CharField(max_length=500, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    # Set by the lease reaper (delivery.engine) on a message that was in flight when its worker died: it
    # may have reached the recipient already, so a resend may be a duplicate (docs/architecture.md#delivery-engine).
    possible_duplicate = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["run", "contact"], name="uniq_delivery_per_run_contact")]
        indexes = [
            models.Index(fields=["send_at"], name="delivery_due_idx", condition=models.Q(status="queued")),
            models.Index(fields=["lease_until"], name="delivery_lease_idx", condition=models.Q(status="sending")),
            # The reaper's other query: claimed, never attempted rows whose claim may have died.
            models.Index(
                fields=["lease_until"],
                name="delivery_claim_lease_idx",
                condition=models.Q(status="queued", lease_until__isnull=False),
            ),
            models.Index(fields=["run", "status"], name="delivery_run_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.status})"


class Event(models.Model):
    """One thing that happened to one message, or to a campaign: the stream that Send Time Optimization,
    webhooks and reports read (docs/architecture.md, "Events"). Written for campaign deliveries and
    transactional messages alike; never updated.

    The references are plain ids, not foreign keys: an event outlives a deleted campaign or message (reports
    and webhook replays still need it), and the send path writes these rows in the same statement as its
    marks, where per-row foreign-key checks would cost throughput. The workspace is the tenancy key.
    """

    class Type(models.TextChoices):
        SCHEDULED = "scheduled"
        QUEUED = "queued"
        SENT = "sent"
        DELIVERED = "delivered"
        DEFERRED = "deferred"
        BOUNCED = "bounced"
        OPENED = "opened"
        CLICKED = "clicked"
        UNSUBSCRIBED = "unsubscribed"
        COMPLAINED = "complained"
        CANCELLED = "cancelled"
        FAILED = "failed"
        CAMPAIGN_SCHEDULED = "campaign.scheduled"
        CAMPAIGN_RESCHEDULED = "campaign.rescheduled"
        CAMPAIGN_CANCELLED = "campaign.cancelled"
        CAMPAIGN_SENDING = "campaign.sending"
        CAMPAIGN_PAUSED = "campaign.paused"
        CAMPAIGN_FINISHED = "campaign.finished"
        CAMPAIGN_MISSED = "campaign.missed"
        # Its first report figures exist (reports.aggregation); they keep updating after this.
        CAMPAIGN_REPORTED = "campaign.reported"

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    type = models.CharField(max_length=32, choices=Type.choices)
    occurred_at = models.DateTimeField()
    email = models.CharField(max_length=254, blank=True)
    # The id an integrator knows the message by: a transactional message's API `message_id`, a campaign
    # delivery's RFC 5322 Message-ID (set once it is composed; blank on an event before that).
    message_id = models.CharField(max_length=255, blank=True)
    delivery_id = models.BigIntegerField(null=True, blank=True)
    campaign_id = models.UUIDField(null=True, blank=True)
    run_id = models.UUIDField(null=True, blank=True)
    batch_id = models.UUIDField(null=True, blank=True)
    # Type-specific: reason (bounce, failure, cancel), retry_at (deferred), url (click), user_agent
    # (open, click, unsubscribe), detail (a sentence for the message log).
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        # Newest first is the API's order; ids grow with time, so every listing index ends in id. The
        # workspace's own listing uses the primary key backwards and the foreign key's index for its count
        # (EXPLAIN in docs/decisions/017): a (workspace, id) index was never chosen and cost every insert.
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["campaign_id", "id"], name="event_campaign_idx", condition=models.Q(campaign_id__isnull=False)
            ),
            models.Index(fields=["message_id", "id"], name="event_message_idx", condition=~models.Q(message_id="")),
            models.Index(fields=["workspace", "email", "id"], name="event_ws_email_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.email} @ {self.occurred_at:%Y-%m-%d %H:%M:%S}Z"
