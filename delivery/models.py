from django.db import models

from accounts.models import Workspace


class Delivery(models.Model):
    """One recipient of one campaign run: the per-recipient schedule (DESIGN.md §8).

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
    # may have reached the recipient already, so a resend may be a duplicate (DESIGN.md §8).
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


class DeliveryEvent(models.Model):
    """Something a recipient did with a delivered message, as seen by the tracking endpoints (DESIGN.md
    §10). One row per hit (every open and click counts for engagement and reports); the first open and
    click are also stamped on the Delivery itself."""

    class Kind(models.TextChoices):
        OPENED = "opened"
        CLICKED = "clicked"
        UNSUBSCRIBED = "unsubscribed"

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField()
    user_agent = models.CharField(max_length=500, blank=True)
    url = models.TextField(blank=True)

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["delivery", "kind"], name="delivery_event_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.delivery_id} @ {self.at:%Y-%m-%d %H:%M:%S}Z"
