"""Report rollups, kept current from the event table by `reports.aggregation` (docs/decisions/050).

Every figure a report shows is read from these rows, never by scanning `delivery.Event` at request time: a
campaign of a million recipients has several million events. The aggregator is the only writer; it reads
the events it has not seen yet (by id, with the ids that were not yet visible held in `PendingEvent`)
and adds them here in one transaction with its cursor, so an event is counted exactly once.
References are plain ids, like the events they come from.
"""

import uuid

from django.db import models

from accounts.models import Workspace


class AggregationState(models.Model):
    """The aggregator's cursor: every event with an id at or below `last_event_id` has been counted, except
    those listed in PendingEvent (not yet committed when the aggregator passed them). One row."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"aggregated up to event {self.last_event_id}"


class PendingEvent(models.Model):
    """An id below the cursor that no committed event had when the aggregator passed it: a transaction
    still writing it, or a number no event will ever have (a rollback). Looked up again every tick until
    it appears or no transaction that began before `noticed_at` is still running (docs/decisions/050)."""

    event_id = models.BigIntegerField(primary_key=True)
    noticed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"pending event {self.event_id}"


class RunReport(models.Model):
    """Counters of one campaign run. A campaign's totals are the sum over its runs."""

    run_id = models.UUIDField(primary_key=True)
    campaign_id = models.UUIDField(db_index=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    sent = models.PositiveBigIntegerField(default=0)
    delivered = models.PositiveBigIntegerField(default=0)
    bounced = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    opens = models.PositiveBigIntegerField(default=0, help_text="Human opens: machine opens are counted apart.")
    machine_opens = models.PositiveBigIntegerField(default=0)
    unique_opens = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    unique_clicks = models.PositiveBigIntegerField(default=0)
    unsubscribes = models.PositiveBigIntegerField(default=0)
    complaints = models.PositiveBigIntegerField(default=0)
    first_aggregated_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"report of run {self.run_id}"


class RecipientActivity(models.Model):
    """Opens and clicks of one recipient of one run: what makes an open or a click unique, and the
    per-recipient columns of the export."""

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField()
    email = models.CharField(max_length=254)
    opens = models.PositiveIntegerField(default=0)
    machine_opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    first_open_at = models.DateTimeField(null=True, blank=True)
    first_click_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run_id", "email"], name="uniq_activity_run_email")]

    def __str__(self) -> str:
        return f"{self.email} in run {self.run_id}"


class LinkReport(models.Model):
    """Clicks on one URL of one run. `url_hash` (SHA-256 of the URL) keys it: URLs can be longer than an
    index entry may be."""

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField()
    campaign_id = models.UUIDField(db_index=True)
    url_hash = models.CharField(max_length=64)
    url = models.TextField()
    clicks = models.PositiveBigIntegerField(default=0)
    unique_clicks = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run_id", "url_hash"], name="uniq_link_run_url")]

    def __str__(self) -> str:
        return self.url


class LinkClicker(models.Model):
    """That a recipient has clicked a URL of a run (the set behind `unique_clicks` per link)."""

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField()
    url_hash = models.CharField(max_length=64)
    email = models.CharField(max_length=254)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run_id", "url_hash", "email"], name="uniq_link_clicker"),
        ]

    def __str__(self) -> str:
        return f"{self.email} clicked {self.url_hash[:12]}"


class OpenSlot(models.Model):
    """Human opens of a run in one quarter hour (UTC). Every zone in use today is a whole number of quarter
    hours from UTC, so these convert exactly to local hours in any IANA zone at read time."""

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField()
    campaign_id = models.UUIDField(db_index=True)
    slot = models.DateTimeField()
    opens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run_id", "slot"], name="uniq_open_slot")]

    def __str__(self) -> str:
        return f"{self.opens} opens at {self.slot:%Y-%m-%d %H:%M}Z"


class ReportExport(models.Model):
    """An asynchronous CSV of a campaign's per-recipient results (docs/decisions/051)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="report_exports")
    campaign_id = models.UUIDField()
    run_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    file = models.CharField(max_length=255, blank=True, help_text="Name in the default storage.")
    rows = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="report_export_expiry_idx")]

    def __str__(self) -> str:
        return f"export {self.id} ({self.status})"
