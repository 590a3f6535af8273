import json
import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as dj_timezone

from accounts.models import Workspace
from common.jsontree import strings
from common.timezones import validate_timezone_name

# Attributes are free-form personalisation data, but every contact row is read at fan-out and render
# time, so a contact may not carry an unbounded document.
ATTRIBUTES_MAX_KEYS = 100
ATTRIBUTE_KEY_MAX_LENGTH = 100
ATTRIBUTES_MAX_BYTES = 16 * 1024


def validate_attributes(value) -> None:
    """A flat-or-nested JSON object with string keys, bounded in size, without NUL characters
    (PostgreSQL's jsonb cannot store U+0000)."""
    if not isinstance(value, dict):
        raise ValidationError('attributes must be a JSON object, e.g. {"country": "ID"}.')
    if len(value) > ATTRIBUTES_MAX_KEYS:
        raise ValidationError(f"attributes may have at most {ATTRIBUTES_MAX_KEYS} keys.")
    for key in value:
        if not isinstance(key, str) or not key.strip():
            raise ValidationError("attributes keys must be non-empty strings.")
        if len(key) > ATTRIBUTE_KEY_MAX_LENGTH:
            raise ValidationError(f"attributes key '{key[:20]}…' is longer than {ATTRIBUTE_KEY_MAX_LENGTH}.")
    if _contains_nul(value):
        raise ValidationError("attributes may not contain NUL characters.")
    if len(json.dumps(value, ensure_ascii=False).encode()) > ATTRIBUTES_MAX_BYTES:
        raise ValidationError(f"attributes may be at most {ATTRIBUTES_MAX_BYTES} bytes as JSON.")


def _contains_nul(value) -> bool:
    # Without recursion: the admin's JSON field parses any depth (common.jsontree).
    return any("\x00" in text for _, text in strings(value))


def normalize_email(value: str) -> str:
    return value.strip().lower()


class Label(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="uniq_label_name_per_workspace")
        ]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    class Status(models.TextChoices):
        SUBSCRIBED = "subscribed"
        UNSUBSCRIBED = "unsubscribed"
        BOUNCED = "bounced"
        COMPLAINED = "complained"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="contacts")
    # Stored lower-cased: mailbox providers treat addresses case-insensitively in practice, and one
    # person must not become two contacts (and get two copies) because of capitalisation.
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    timezone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_timezone_name],
        help_text="IANA zone; blank means the workspace's default.",
    )
    attributes = models.JSONField(default=dict, blank=True, validators=[validate_attributes])
    labels = models.ManyToManyField(Label, blank=True, related_name="contacts")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBSCRIBED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "email"], name="uniq_contact_email_per_workspace")
        ]
        indexes = [models.Index(fields=["workspace", "status"], name="contact_ws_status_idx")]

    def __str__(self) -> str:
        return self.email


class Segment(models.Model):
    """A saved filter over contacts; `rules` is validated and compiled by audience.segments."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=200)
    rules = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="uniq_segment_name_per_workspace")
        ]

    def __str__(self) -> str:
        return self.name


class Suppression(models.Model):
    """Addresses that must never get mail from this workspace, whether or not they are contacts."""

    class Reason(models.TextChoices):
        MANUAL = "manual"
        UNSUBSCRIBED = "unsubscribed"
        BOUNCED = "bounced"
        COMPLAINED = "complained"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="suppressions")
    email = models.EmailField(max_length=254)
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "email"], name="uniq_suppression_per_workspace")
        ]

    def __str__(self) -> str:
        return self.email


class ContactImport(models.Model):
    """One CSV upload, imported in chunks by the `imports` worker (docs/decisions/019). The file is kept in
    the database as ContactImportPart rows (not on a disk the workers may not share) until the import
    ends. Each chunk commits together with the checkpoint (where the next chunk starts), so a worker that
    dies or runs out of time costs at most the chunk it was on, and the reaper resumes from there."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        COMPLETED = "completed"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="contact_imports")
    filename = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0, help_text="Rows read so far, imported or skipped.")
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{line, email, errors}] for skipped rows.")
    failure_reason = models.CharField(max_length=500, blank=True)
    # The checkpoint: the header as parsed by the first chunk, and the byte offset and line number in the
    # file where the next chunk starts.
    header = models.JSONField(null=True, blank=True, editable=False)
    checkpoint_offset = models.PositiveBigIntegerField(default=0, editable=False)
    checkpoint_line = models.PositiveIntegerField(default=1, editable=False)
    # The last sign of life (the upload, a committed chunk, or the reaper's re-enqueue): the reaper
    # resumes an unfinished import whose progress_at is older than CONTACT_IMPORT_STALLED_SECONDS.
    progress_at = models.DateTimeField(default=dj_timezone.now)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Re-enqueues by the reaper since the last committed chunk."
    )
    # The one task that may process the import; a duplicate or a superseded chain finds another id here
    # and stops (docs/decisions/019). Null for the in-process management command.
    task_id = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.filename or self.id} ({self.status})"


class ContactImportPart(models.Model):
    """A slice of an uploaded file, `start` bytes into it. The worker reads the file part by part from any
    checkpoint, so a whole upload never sits in a process's memory."""

    contact_import = models.ForeignKey(ContactImport, on_delete=models.CASCADE, related_name="parts")
    start = models.PositiveBigIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact_import", "start"], name="uniq_import_part_start")
        ]

    def __str__(self) -> str:
        return f"{self.contact_import_id} from byte {self.start}"


class EngagementProfile(models.Model):
    """When a contact reads mail, by hour of week (docs/decisions/030). `engagement` holds decayed, weighted
    opens and clicks, `exposure` the decayed sends we made to them, both as 168 float32 values (empty bytes
    while nothing is known) decayed to `decayed_to`. The counters are plain totals for people to read."""

    contact = models.OneToOneField(Contact, on_delete=models.CASCADE, primary_key=True, related_name="engagement")
    # Indexed with the contact (below): the STO prior reads a workspace's profiles in contact order.
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    engagement = models.BinaryField(default=b"")
    exposure = models.BinaryField(default=b"")
    decayed_to = models.DateTimeField(null=True, blank=True)
    opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    machine_opens = models.PositiveIntegerField(default=0)
    sends = models.PositiveIntegerField(default=0)
    last_engaged_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "contact"], name="engagement_workspace_contact")]

    def __str__(self) -> str:
        return f"engagement of {self.contact_id}"
