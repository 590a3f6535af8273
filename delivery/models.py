from django.db import models

from accounts.models import Workspace


class Delivery(models.Model):
    """One recipient of one campaign run: the per-recipient schedule (DESIGN.md §8).

    State moves only by conditional UPDATEs (`... WHERE status = X`), so a redelivered task finds its rows
    already claimed or sent and does nothing twice:
    queued -> sending -> sent | failed | bounced | uncertain; queued -> skipped | cancelled.
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
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey("campaigns.CampaignRun", on_delete=models.CASCADE, related_name="deliveries")
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="deliveries")
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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "contact"], name="uniq_delivery_per_run_contact")]
        indexes = [
            models.Index(fields=["send_at"], name="delivery_due_idx", condition=models.Q(status="queued")),
            models.Index(fields=["lease_until"], name="delivery_lease_idx", condition=models.Q(status="sending")),
            models.Index(fields=["run", "status"], name="delivery_run_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.status})"
