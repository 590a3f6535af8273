import uuid

from django.db import models

from accounts.models import Workspace


class Template(models.Model):
    """Reusable content: subject, html and text, personalised with Jinja2 in a sandbox."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=998, blank=True)
    html = models.TextField(blank=True)
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_template_name_per_workspace")]

    def __str__(self) -> str:
        return self.name


# The shape of `Campaign.audience`: these four lists of ids, each at most AUDIENCE_MAX_IDS long, all four
# present in what is stored (campaigns.services.campaign_audience_clean makes it so).
AUDIENCE_KEYS = ("include_labels", "exclude_labels", "include_segments", "exclude_segments")
AUDIENCE_MAX_IDS = 100
# `Campaign.tracking`: these flags, each on unless turned off.
TRACKING_KEYS = ("opens", "clicks")


def default_audience() -> dict:
    return {key: [] for key in AUDIENCE_KEYS}


def default_tracking() -> dict:
    return dict.fromkeys(TRACKING_KEYS, True)


class Campaign(models.Model):
    """One email to many contacts. Status changes only in campaigns.services, under a row lock."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        SCHEDULED = "scheduled"
        SENDING = "sending"
        PAUSED = "paused"
        SENT = "sent"
        REPORTED = "reported"
        CANCELLED = "cancelled"
        FAILED = "failed"

    # A one-off campaign whose run has ended: `sent`, and `reported` from the reports aggregator's first count
    # of its events on (a few seconds later), so a waiter for the end must accept either.
    FINISHED = (Status.SENT, Status.REPORTED)

    class ScheduleType(models.TextChoices):
        SCHEDULED = "scheduled"
        RECURRING = "recurring"

    # The statuses in which each action is allowed (docs/architecture.md#campaigns, docs/decisions/004). The
    # services check it under the row lock and answer 409 otherwise; the admin offers a button or an edit only
    # where it says yes. Action names are the API's and the admin's (`POST campaigns/{id}/cancel-schedule`).
    TRANSITIONS = {
        "edit": (Status.DRAFT, Status.SCHEDULED, Status.FAILED),
        "delete": (Status.DRAFT,),
        "send-now": (Status.DRAFT, Status.FAILED, Status.SCHEDULED),
        # Also "immediate" (clear the schedule): a scheduled campaign returns to draft.
        "schedule": (Status.DRAFT, Status.FAILED, Status.SCHEDULED),
        "cancel-schedule": (Status.SCHEDULED,),
        "pause": (Status.SENDING,),
        "resume": (Status.PAUSED,),
        "stop": (Status.SENDING, Status.PAUSED),
        "duplicate": tuple(Status),
    }
    STARTABLE = TRANSITIONS["send-now"]
    EDITABLE = TRANSITIONS["edit"]
    MAX_LABELS = 100

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)

    subject = models.CharField(max_length=998, blank=True)
    preheader = models.CharField(max_length=255, blank=True)
    from_name = models.CharField(max_length=200, blank=True)
    from_email = models.EmailField(max_length=254, blank=True)
    reply_to = models.EmailField(max_length=254, blank=True)
    html = models.TextField(blank=True)
    text = models.TextField(blank=True)
    template = models.ForeignKey(Template, null=True, blank=True, on_delete=models.SET_NULL, related_name="campaigns")
    substitution_data = models.JSONField(default=dict, blank=True)
    category = models.CharField(max_length=100, blank=True, db_index=True)
    labels = models.ManyToManyField("audience.Label", blank=True, related_name="campaigns")
    audience = models.JSONField(default=default_audience, blank=True)
    tracking = models.JSONField(default=default_tracking, blank=True)

    # Schedule. `next_run_at` is what the dispatcher reads: the instant of the next launch, for one-off
    # and recurring schedules alike; `scheduled_at` is the one-off instant as the user gave it.
    schedule_type = models.CharField(max_length=16, choices=ScheduleType.choices, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    schedule_timezone = models.CharField(max_length=64, blank=True)
    recurring_config = models.JSONField(null=True, blank=True)
    recurring_anchor = models.DateField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    send_time_optimization = models.JSONField(null=True, blank=True)
    recipient_local_time = models.BooleanField(default=False)
    # Scheduling policies (docs/decisions/060), part of the schedule: cleared with it.
    max_lateness_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="A run not started within this many minutes of its due time is missed."
    )
    quiet_hours = models.JSONField(
        null=True, blank=True, help_text='{"start": "21:00", "end": "08:00"} in each recipient\'s zone.'
    )
    only_new_recipients = models.BooleanField(
        default=False, help_text="Recurring: each run reaches only contacts no earlier run of the campaign reached."
    )
    # Sent or scheduled with a sandbox API key: the runs go through the whole pipeline, nothing reaches
    # the mail server (docs/decisions/061).
    sandbox = models.BooleanField(default=False)
    # Set by the dispatcher when it has enqueued the launch task for `next_run_at`, so the next tick does
    # not enqueue it again; a launch task lost with Redis is re-enqueued once this is old enough.
    launch_enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "status"], name="campaign_ws_status_idx"),
            # The dispatcher's claim query: due scheduled campaigns only (partial index).
            models.Index(
                fields=["next_run_at"],
                name="campaign_due_idx",
                condition=models.Q(status="scheduled"),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def can_transition(self, action: str) -> bool:
        """Whether TRANSITIONS allows `action` in the campaign's current status."""
        return self.status in self.TRANSITIONS[action]

    def allowed_actions(self) -> list[str]:
        return [action for action, statuses in self.TRANSITIONS.items() if self.status in statuses]

    def effective_tracking(self) -> dict[str, bool]:
        """Both tracking flags, one missing from the stored value at its default."""
        stored = self.tracking if isinstance(self.tracking, dict) else {}
        return {**default_tracking(), **{key: stored[key] for key in TRACKING_KEYS if key in stored}}

    def clear_schedule(self) -> None:
        self.schedule_type = ""
        self.scheduled_at = None
        self.schedule_timezone = ""
        self.recurring_config = None
        self.recurring_anchor = None
        self.next_run_at = None
        self.send_time_optimization = None
        self.recipient_local_time = False
        self.launch_enqueued_at = None
        self.max_lateness_minutes = None
        self.quiet_hours = None
        self.only_new_recipients = False
        self.sandbox = False


class CampaignRun(models.Model):
    """One send of a campaign; a recurring campaign has one per occurrence. Totals are counters kept by
    the delivery engine (docs/architecture.md#delivery-engine: progress by counters, not chords)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        FANNING_OUT = "fanning_out"
        SENDING = "sending"
        PAUSED = "paused"
        SENT = "sent"
        CANCELLED = "cancelled"
        FAILED = "failed"
        MISSED = "missed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="campaign_runs")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=16, choices=[("now", "Send now"), ("schedule", "Schedule")])
    due_at = models.DateTimeField(help_text="When this run was due to launch.")
    occurrence_at = models.DateTimeField(
        null=True, blank=True, help_text="The instant the schedule named (differs from due_at for local-time runs)."
    )
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    sandbox = models.BooleanField(
        default=False, help_text="Run of a sandbox key: nothing is handed to the mail server."
    )
    failure_reason = models.CharField(max_length=500, blank=True)
    # When the run's hand-offs were folded into the recipients' engagement exposure (docs/decisions/030);
    # set in the same transaction as the fold, so a second fold of the run does nothing.
    exposure_folded_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-due_at"]
        indexes = [
            models.Index(fields=["due_at"], name="run_pending_due_idx", condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} @ {self.due_at:%Y-%m-%d %H:%M}Z"
