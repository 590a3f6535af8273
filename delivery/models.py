import uuid

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
    expired and another call has re-claimed the row, the first call can no longer touch it. Rows go
    `sending` a chunk at a time, and the batch's SendProgress row says which of them is on the wire; so
    after a crash, `queued` rows with an expired lease were never attempted (safe to send again) and the
    `sending` ones are settled by the reaper from that progress row (below it sent, at it in flight and
    retried or flagged `uncertain` by policy, above it never attempted).
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
    # Not enforced by the database either: the check locks each referenced contact (a WAL record per row),
    # a third of a million-recipient STO fan-out's commit (docs/decisions/032). Django still sets it NULL
    # when the contact is deleted. A contact deleted while a fan-out that read it was running can leave an
    # id that names no one: every reader joins (select_related), so it reads as deleted, and the send
    # path skips the delivery as "contact deleted", as it does a NULL one.
    contact = models.ForeignKey(
        "audience.Contact", null=True, on_delete=models.SET_NULL, related_name="deliveries", db_constraint=False
    )
    email = models.EmailField(max_length=254)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    send_at = models.DateTimeField()
    send_reason = models.CharField(max_length=200, blank=True, help_text="Why this recipient gets this time.")
    # launch_time, local_time, own_history, audience_history, window_start, holdout (docs/decisions/030).
    send_reason_code = models.CharField(max_length=20, blank=True)
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
    # Of a sandbox run: rendered and marked like any other, never handed to the mail server.
    sandbox = models.BooleanField(default=False)

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
        # An outbound webhook endpoint was switched off after a 410 or a long failure streak (webhooks app).
        WEBHOOK_DISABLED = "webhook.disabled"
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


class SendProgress(models.Model):
    """How far one live send batch has got: one small row per claim, moved before every hand-off.

    A batch marks its deliveries `sending` a chunk at a time (delivery.services), so after a crash the
    rows alone cannot say which of a chunk went out. This row can: `position` is the delivery being handed
    to the mail server, so the claim's `sending` rows below it were accepted, the one at it is in flight and
    those above it were never attempted (the reaper, delivery.engine, settles them that way). It is keyed by
    the claim's lease, the fencing token of every write of the batch: the reaper deletes it when it takes a
    dead claim's rows, and a batch that finds its row gone stops. No column of it is indexed but the lease,
    which the per-message update never changes, so that update is a HOT update of one narrow row.
    """

    lease_until = models.DateTimeField(unique=True)
    position = models.BigIntegerField(null=True)
    moved_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"batch until {self.lease_until:%H:%M:%S} at delivery {self.position}"


class Throttle(models.Model):
    """A send-rate limit kept as data (docs/decisions/062): per workspace, per recipient domain or per
    sending domain, editable in the API and the admin and read by every send batch, so a change takes
    effect within one batch. The environment's DELIVERY_RATE_* stay the defaults where no row says more.
    A sending-domain row may carry a warm-up ramp: a daily cap per day since `warmup_started_on`."""

    class Scope(models.TextChoices):
        WORKSPACE = "workspace"
        RECIPIENT_DOMAIN = "recipient_domain"
        SENDING_DOMAIN = "sending_domain"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="throttles")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    # The recipient or sending domain; blank for the workspace scope.
    domain = models.CharField(max_length=253, blank=True)
    rate_per_second = models.FloatField(null=True, blank=True, help_text="Messages a second; empty = no rate limit.")
    warmup_started_on = models.DateField(null=True, blank=True, help_text="Day 1 of the warm-up ramp (UTC).")
    warmup_daily_caps = models.JSONField(
        null=True, blank=True, help_text="Messages allowed on day 1, 2, ... of the ramp; after the last, no cap."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "domain"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "scope", "domain"], name="uniq_throttle_per_scope_domain")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.domain or ''}: {self.rate_per_second or '-'}/s".strip()


class EspEvent(models.Model):
    """An ESP's tracking event already taken in (django-anymail's tracking webhooks): ESPs deliver their
    webhooks at least once, so the second copy of an event finds its row here and changes nothing. One Amazon
    SES notification covers several recipients, so the key includes the recipient."""

    id = models.BigAutoField(primary_key=True)
    esp = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)
    recipient = models.CharField(max_length=254)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ESP event"
        constraints = [
            models.UniqueConstraint(fields=["esp", "event_id", "recipient"], name="uniq_esp_event"),
        ]

    def __str__(self) -> str:
        return f"{self.esp} {self.event_id} {self.recipient}"
