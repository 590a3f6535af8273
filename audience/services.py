"""Audience use cases that write: contacts, labels, segments, suppressions and CSV imports.

The API, the admin, the management command and the Celery task all come through here."""

import csv
import functools
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO
from uuid import UUID

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import OperationalError, connection, transaction
from django.utils import timezone as dj_timezone

from accounts.models import Workspace
from audience import engagement as eng
from audience.importfile import Records, parts_write
from audience.models import (
    Contact,
    ContactImport,
    ContactImportPart,
    EngagementProfile,
    Label,
    Segment,
    Suppression,
    normalize_email,
    validate_attributes,
)
from audience.segments import rule_label_ids, validate_rules
from common import errors
from common.db import bulk_update_by_pk, unique_or_400
from common.timezones import is_valid_timezone
from common.validators import single_line_problems

logger = logging.getLogger(__name__)

_UNSET: Any = object()


# --- labels ---------------------------------------------------------------------------------------------


def _clean_label_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise errors.ValidationError.for_field("name", "This field may not be blank.")
    if len(name) > Label._meta.get_field("name").max_length or "\x00" in name:
        raise errors.ValidationError.for_field("name", "Must be at most 100 characters, without NUL.")
    return name


def label_create(*, workspace: Workspace, name: str) -> Label:
    name = _clean_label_name(name)
    with unique_or_400("name", f"A label named '{name}' already exists."):
        return Label.objects.create(workspace=workspace, name=name)


def label_update(*, workspace: Workspace, instance: Label, name: str = _UNSET) -> Label:
    _check_workspace(workspace, instance)
    if name is not _UNSET:
        instance.name = _clean_label_name(name)
        with unique_or_400("name", f"A label named '{instance.name}' already exists."):
            instance.save(update_fields=["name"])
    return instance


def label_delete(*, workspace: Workspace, instance: Label) -> None:
    _check_workspace(workspace, instance)
    instance.delete()


def _labels_of_workspace(*, workspace: Workspace, label_ids: Iterable[UUID], field: str = "labels") -> list[Label]:
    """The labels named by id, all of this workspace, or a 400 naming `field`. A label of another
    workspace is reported exactly like an unknown one."""
    try:
        wanted = list(dict.fromkeys(UUID(str(label_id)) for label_id in label_ids))
    except ValueError:
        raise errors.ValidationError.for_field(field, "Label ids must be UUIDs.") from None
    found = {label.id: label for label in Label.objects.filter(workspace=workspace, id__in=wanted)}
    missing = [str(label_id) for label_id in wanted if label_id not in found]
    if missing:
        raise errors.ValidationError.for_field(field, f"Unknown label id(s): {', '.join(missing)}.")
    return [found[label_id] for label_id in wanted]


# --- contacts -------------------------------------------------------------------------------------------


# Contact fields that go into the To header of every message to the contact: each must be a single line
# (Django's validate_email lets a quoted local part hold control characters such as VT).
CONTACT_HEADER_FIELDS = ("email", "first_name", "last_name")


def _clean_contact_fields(data: dict) -> dict:
    """Normalise and check what every path (API, admin, import) must agree on."""
    if "email" in data:
        data["email"] = normalize_email(data["email"] or "")
    problems: dict[str, list[str]] = single_line_problems(data, CONTACT_HEADER_FIELDS)
    if "email" in data and "email" not in problems:
        try:
            validate_email(data["email"])
        except DjangoValidationError:
            problems["email"] = ["Enter a valid email address."]
    if "timezone" in data:
        data["timezone"] = (data["timezone"] or "").strip()
        if data["timezone"] and not is_valid_timezone(data["timezone"]):
            problems["timezone"] = [f"'{data['timezone']}' is not a known IANA timezone (e.g. 'Europe/London')."]
    if "attributes" in data:
        try:
            validate_attributes(data["attributes"])
        except DjangoValidationError as exc:
            problems["attributes"] = list(exc.messages)
    if "status" in data and data["status"] not in Contact.Status.values:
        problems["status"] = [f"Must be one of: {', '.join(Contact.Status.values)}."]
    if problems:
        raise errors.ValidationError(details=problems)
    return data


def _duplicate_email(email: str) -> str:
    return f"A contact with email '{email}' already exists."


def contact_create(
    *,
    workspace: Workspace,
    email: str,
    first_name: str = "",
    last_name: str = "",
    timezone: str = "",
    attributes: dict | None = None,
    labels: Iterable[UUID] = (),
    status: str = Contact.Status.SUBSCRIBED,
) -> Contact:
    data = _clean_contact_fields(
        {
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "timezone": timezone,
            "attributes": attributes or {},
            "status": status,
        }
    )
    label_objs = _labels_of_workspace(workspace=workspace, label_ids=labels)
    with unique_or_400("email", _duplicate_email(data["email"])):
        contact = Contact.objects.create(workspace=workspace, **data)
        contact.labels.set(label_objs)
    return contact


def contact_update(
    *,
    workspace: Workspace,
    instance: Contact,
    labels: Iterable[UUID] = _UNSET,
    **fields: Any,
) -> Contact:
    """Change the given fields only (PATCH semantics; PUT passes them all). `labels` replaces the set."""
    _check_workspace(workspace, instance)
    allowed = {"email", "first_name", "last_name", "timezone", "attributes", "status"}
    unknown = set(fields) - allowed
    if unknown:
        raise errors.ValidationError(details={name: ["Unknown field."] for name in sorted(unknown)})
    data = _clean_contact_fields(dict(fields))
    label_objs = None if labels is _UNSET else _labels_of_workspace(workspace=workspace, label_ids=labels)
    for name, value in data.items():
        setattr(instance, name, value)
    with unique_or_400("email", _duplicate_email(instance.email)):
        instance.save()
        if label_objs is not None:
            instance.labels.set(label_objs)
    return instance


def contact_delete(*, workspace: Workspace, instance: Contact) -> None:
    _check_workspace(workspace, instance)
    instance.delete()


# --- segments -------------------------------------------------------------------------------------------


def _clean_segment_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise errors.ValidationError.for_field("name", "This field may not be blank.")
    if len(name) > Segment._meta.get_field("name").max_length or "\x00" in name:
        raise errors.ValidationError.for_field("name", "Must be at most 200 characters, without NUL.")
    return name


def segment_rules_check(*, workspace: Workspace, rules: Any) -> None:
    """Valid grammar, and every label it names is a label of this workspace."""
    validate_rules(rules)
    wanted = rule_label_ids(rules)
    known = set(Label.objects.filter(workspace=workspace, id__in=[i for _, i in wanted]).values_list("id", flat=True))
    for path, label_id in wanted:
        if label_id not in known:
            raise errors.ValidationError(
                message=f"Invalid segment rules at {path}: unknown label id {label_id}.",
                details={path: [f"Unknown label id {label_id}."]},
            )


def segment_create(*, workspace: Workspace, name: str, rules: Any) -> Segment:
    name = _clean_segment_name(name)
    segment_rules_check(workspace=workspace, rules=rules)
    with unique_or_400("name", f"A segment named '{name}' already exists."):
        return Segment.objects.create(workspace=workspace, name=name, rules=rules)


def segment_update(*, workspace: Workspace, instance: Segment, name: str = _UNSET, rules: Any = _UNSET) -> Segment:
    _check_workspace(workspace, instance)
    if name is not _UNSET:
        instance.name = _clean_segment_name(name)
    if rules is not _UNSET:
        segment_rules_check(workspace=workspace, rules=rules)
        instance.rules = rules
    with unique_or_400("name", f"A segment named '{instance.name}' already exists."):
        instance.save()
    return instance


def segment_delete(*, workspace: Workspace, instance: Segment) -> None:
    _check_workspace(workspace, instance)
    instance.delete()


# --- suppressions ---------------------------------------------------------------------------------------


def _clean_suppression(data: dict) -> dict:
    problems: dict[str, list[str]] = {}
    if "email" in data:
        data["email"] = normalize_email(data["email"] or "")
        try:
            validate_email(data["email"])
        except DjangoValidationError:
            problems["email"] = ["Enter a valid email address."]
    if "reason" in data and data["reason"] not in Suppression.Reason.values:
        problems["reason"] = [f"Must be one of: {', '.join(Suppression.Reason.values)}."]
    if problems:
        raise errors.ValidationError(details=problems)
    return data


def suppression_create(*, workspace: Workspace, email: str, reason: str = Suppression.Reason.MANUAL) -> Suppression:
    data = _clean_suppression({"email": email, "reason": reason})
    with unique_or_400("email", f"'{data['email']}' is already suppressed."):
        return Suppression.objects.create(workspace=workspace, **data)


def suppression_update(*, workspace: Workspace, instance: Suppression, **fields: Any) -> Suppression:
    _check_workspace(workspace, instance)
    unknown = set(fields) - {"email", "reason"}
    if unknown:
        raise errors.ValidationError(details={name: ["Unknown field."] for name in sorted(unknown)})
    for name, value in _clean_suppression(dict(fields)).items():
        setattr(instance, name, value)
    with unique_or_400("email", f"'{instance.email}' is already suppressed."):
        instance.save()
    return instance


def suppression_delete(*, workspace: Workspace, instance: Suppression) -> None:
    _check_workspace(workspace, instance)
    instance.delete()


# What the mail itself tells us (a hard bounce, a complaint, an unsubscribe link): the send path and the
# tracking endpoints call these, so every contact status change and suppression has one code path.
_STATUS_OF_REASON = {
    Suppression.Reason.BOUNCED: Contact.Status.BOUNCED,
    Suppression.Reason.COMPLAINED: Contact.Status.COMPLAINED,
    Suppression.Reason.UNSUBSCRIBED: Contact.Status.UNSUBSCRIBED,
}


def contact_suppress(*, workspace_id: UUID, email: str, reason: str, contact_id: UUID | None = None) -> bool:
    """Put the address on the workspace's suppression list and move a subscribed contact to the status the
    reason means (bounced, complained, unsubscribed). Idempotent; an earlier suppression keeps its reason.
    Returns whether anything changed."""
    status = _STATUS_OF_REASON[reason]
    with transaction.atomic():
        _, created = Suppression.objects.get_or_create(
            workspace_id=workspace_id, email=normalize_email(email), defaults={"reason": reason}
        )
        contacts = Contact.objects.filter(workspace_id=workspace_id, status=Contact.Status.SUBSCRIBED)
        contacts = contacts.filter(pk=contact_id) if contact_id else contacts.filter(email=normalize_email(email))
        changed = contacts.update(status=status, updated_at=dj_timezone.now())
    return created or bool(changed)


def _check_workspace(workspace: Workspace, instance) -> None:
    # Views hand over objects found in the workspace's queryset; this keeps any other caller honest.
    if instance.workspace_id != workspace.id:
        raise errors.NotFound()


# --- CSV import -----------------------------------------------------------------------------------------

IMPORT_COLUMNS = ("email", "first_name", "last_name", "timezone", "status", "labels")
IMPORT_MAX_STORED_ERRORS = 1000
_LABEL_SEPARATORS = (";", "|")


IMPORTS_QUEUE = "imports"
# By name, with the queue stated here: the task module imports this one (docs/architecture.md#layers).
IMPORT_TASK = "audience.tasks.contact_import_process"
_UNFINISHED = (ContactImport.Status.PENDING, ContactImport.Status.PROCESSING)


def _header(raw: list[str] | None) -> list[str]:
    if raw is None:
        raise errors.ValidationError.for_field("file", "The file is empty; it needs a header row.")
    header = [column.strip().lower() if column.strip().lower() in IMPORT_COLUMNS else column.strip() for column in raw]
    if "email" not in header:
        raise errors.ValidationError.for_field(
            "file", "The header row has no 'email' column (expected e.g. email,first_name,last_name)."
        )
    if any(not column for column in header):
        raise errors.ValidationError.for_field("file", "The header row has an empty column name.")
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise errors.ValidationError.for_field("file", f"The header repeats column(s): {', '.join(duplicates)}.")
    return header


def contact_import_create(*, workspace: Workspace, filename: str, fileobj: BinaryIO) -> ContactImport:
    """Store the upload as a pending import, checking it on the way (size, encoding, CSV, header) and
    counting its rows, in constant memory whatever its size. A rejected file leaves nothing behind. Nothing
    is enqueued: `contact_import_start` does that for the API; the management command processes it
    in-process."""
    with transaction.atomic():
        contact_import = ContactImport.objects.create(workspace=workspace, filename=(filename or "")[:255])
        parts_write(import_id=contact_import.id, fileobj=fileobj, limit=settings.CONTACT_IMPORT_MAX_BYTES)
        records = Records(contact_import.id)
        try:
            _header(records.next_row())
            contact_import.total_rows = sum(1 for _ in records)
        except csv.Error as exc:
            raise errors.ValidationError.for_field("file", f"The file is not valid CSV: {exc}.") from None
        contact_import.save(update_fields=["total_rows"])
    return contact_import


def _send_import_task(import_id: UUID | str, task_id: UUID | str) -> None:
    # No time limits in the message: send_task would copy the sender's (the reaper runs on the default
    # worker), and the imports worker's own must apply, as the task's budget is computed from them.
    current_app.send_task(
        IMPORT_TASK,
        args=[str(import_id)],
        queue=IMPORTS_QUEUE,
        task_id=str(task_id),
        time_limit=None,
        soft_time_limit=None,
    )


def contact_import_start(*, workspace: Workspace, filename: str, fileobj: BinaryIO) -> ContactImport:
    """Store the upload and have the imports worker process it once the row is committed."""

    def enqueue() -> None:
        try:
            _send_import_task(import_id, task_id)
        except Exception as exc:  # broker unreachable: say so, and leave no import pending forever
            logger.exception("Could not enqueue contact import %s", import_id)
            _contact_import_fail(import_id, "The task queue was unreachable; upload the file again.")
            raise errors.ServiceUnavailable("The task queue is unreachable; the import was not started.") from exc

    with transaction.atomic():
        contact_import = contact_import_create(workspace=workspace, filename=filename, fileobj=fileobj)
        contact_import.task_id = task_id = uuid.uuid4()
        contact_import.save(update_fields=["task_id"])
        import_id = contact_import.id
        # After commit, so the worker never looks for a row it cannot see yet.
        transaction.on_commit(enqueue)
    return contact_import


def contact_import_process(
    *,
    import_id: UUID | str,
    task_id: UUID | str | None = None,
    on_progress: Callable[[int], None] | None = None,
    seconds: float | None = None,
) -> bool:
    """Import a pending or processing import a chunk at a time from its checkpoint, until the file ends or
    `seconds` have passed. Returns True when rows are left (the caller has them processed later).

    Each chunk takes the import's row lock (SKIP LOCKED: a twin that finds it taken stops), checks that it
    is still the import's task (`task_id`; None for the in-process management command), and commits its
    contacts together with the new checkpoint, so every row is imported once whoever dies when. A finished
    or failed import is left alone: a redelivered task does nothing."""
    started = time.monotonic()
    while True:
        more, rows = _contact_import_chunk(import_id=import_id, task_id=task_id)
        if rows and on_progress:
            on_progress(rows)
        if not more:
            return False
        if seconds is not None and time.monotonic() - started >= seconds:
            return True


def contact_import_run(*, import_id: UUID | str, task_id: UUID | str | None) -> None:
    """The imports worker's task: chunks for at most CONTACT_IMPORT_TASK_SECONDS (and half the soft time
    limit), then the rest as a new task at the back of the imports queue, so no task runs for minutes and
    imports waiting behind this one get their turn."""
    seconds = min(settings.CONTACT_IMPORT_TASK_SECONDS, settings.CELERY_TASK_SOFT_TIME_LIMIT / 2)
    if not contact_import_process(import_id=import_id, task_id=task_id, seconds=seconds):
        return
    successor = uuid.uuid4()
    # Compare-and-set: if the reaper re-enqueued the import meanwhile, its task owns the import now.
    mine = ContactImport.objects.filter(pk=import_id, status=ContactImport.Status.PROCESSING)
    mine = mine.filter(task_id=task_id) if task_id else mine.filter(task_id__isnull=True)
    if mine.update(task_id=successor):
        _send_import_task(import_id, successor)


def _contact_import_chunk(*, import_id: UUID | str, task_id: UUID | str | None) -> tuple[bool, int]:
    """One chunk in one transaction: (rows are left, rows read)."""
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # The checkpoint commits with the chunk's rows: a PostgreSQL crash that loses the last commits
                # loses both together and the resume reads those rows again, so the WAL flush need not wait.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            contact_import = (
                ContactImport.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("workspace")
                .filter(pk=import_id, status__in=_UNFINISHED)
                .first()
            )
            if contact_import is None or (task_id is not None and str(contact_import.task_id) != str(task_id)):
                return False, 0  # finished, failed, being processed by a twin, or superseded by the reaper
            return _contact_import_next_chunk(contact_import)
    except SoftTimeLimitExceeded:
        raise  # possibly raised inside a query: no more database work here; the reaper resumes the import
    except OperationalError:
        # The database went away or cancelled a statement: the chunk rolled back, and the import waits at
        # its checkpoint for the reaper, which counts the attempt.
        logger.exception("Contact import %s: database error; left at its checkpoint", import_id)
        return False, 0
    except Exception as exc:  # the import must end in a state a user can read, whatever broke
        logger.exception("Contact import %s failed", import_id)
        _contact_import_fail(import_id, _failure_reason(exc))
        return False, 0


def _failure_reason(exc: Exception) -> str:
    if isinstance(exc, errors.ApplicationError):
        problems = " ".join(message for messages in exc.details.values() for message in messages)
        return problems or exc.message
    return f"{type(exc).__name__}: {exc}"


def _contact_import_next_chunk(contact_import: ContactImport) -> tuple[bool, int]:
    chunk_size = settings.CONTACT_IMPORT_CHUNK_SIZE
    records = Records(
        contact_import.id, offset=contact_import.checkpoint_offset, line=contact_import.checkpoint_line
    )
    if contact_import.header is None:
        contact_import.header = _header(records.next_row())
    chunk = list(itertools.islice(records, chunk_size))
    more = len(chunk) == chunk_size
    _process_chunk(contact_import, contact_import.header, chunk)
    now = dj_timezone.now()
    contact_import.processed_rows += len(chunk)
    contact_import.checkpoint_offset, contact_import.checkpoint_line = records.offset, records.line
    contact_import.progress_at = now
    contact_import.attempts = 0
    contact_import.started_at = contact_import.started_at or now
    contact_import.status = ContactImport.Status.PROCESSING
    if not more:
        contact_import.status = ContactImport.Status.COMPLETED
        contact_import.finished_at = now
        contact_import.task_id = None
        ContactImportPart.objects.filter(contact_import=contact_import).delete()
    contact_import.save(
        update_fields=[
            "header", "processed_rows", "checkpoint_offset", "checkpoint_line", "progress_at", "attempts",
            "started_at", "status", "finished_at", "task_id", "errors", "created_count", "updated_count",
            "error_count",
        ]
    )
    return more, len(chunk)


def _contact_import_fail(import_id: UUID | str, reason: str) -> None:
    """End an unfinished import as failed with the reason; the rows before its checkpoint stay imported."""
    with transaction.atomic():
        ContactImport.objects.filter(pk=import_id, status__in=_UNFINISHED).update(
            status=ContactImport.Status.FAILED,
            failure_reason=reason[:500],
            finished_at=dj_timezone.now(),
            task_id=None,
        )
        # Nothing can resume a failed import, so its file is only weight in the database.
        ContactImportPart.objects.filter(contact_import_id=import_id).delete()


@dataclass(frozen=True)
class ImportsReaped:
    resumed: int
    failed: int


def contact_import_reap(*, now: datetime | None = None) -> ImportsReaped:
    """Resume the imports whose worker died. Beat runs this on the default queue (SYSTEM_PERIODIC_TASKS).

    An unfinished import without a sign of life for CONTACT_IMPORT_STALLED_SECONDS lost its worker (killed,
    out of memory, past its time limit) or its task (Redis flushed): it gets a new task, which supersedes
    any old one and resumes from the checkpoint. After CONTACT_IMPORT_MAX_ATTEMPTS of those without a chunk
    committed in between, it is failed with the reason. An import a worker is on holds its row lock and is
    skipped (and not waited for: this runs with the clock's ticks)."""
    now = now or dj_timezone.now()
    cutoff = now - timedelta(seconds=settings.CONTACT_IMPORT_STALLED_SECONDS)
    resumed = failed = 0
    with transaction.atomic():
        stalled = list(
            ContactImport.objects.select_for_update(skip_locked=True)
            .filter(status__in=_UNFINISHED, progress_at__lt=cutoff)
            .order_by("progress_at")
            .only("id", "attempts", "processed_rows", "total_rows", "checkpoint_line")[:100]
        )
        for contact_import in stalled:
            if contact_import.attempts >= settings.CONTACT_IMPORT_MAX_ATTEMPTS:
                logger.warning("Contact import %s stalled %d times; failed", contact_import.id, contact_import.attempts)
                _contact_import_fail(
                    contact_import.id,
                    f"No progress for {settings.CONTACT_IMPORT_STALLED_SECONDS} s, {contact_import.attempts + 1} "
                    f"times in a row (its worker died or ran out of time); stopped at line "
                    f"{contact_import.checkpoint_line} after {contact_import.processed_rows} of "
                    f"{contact_import.total_rows} rows, which are imported or skipped as reported.",
                )
                failed += 1
                continue
            contact_import.attempts += 1
            contact_import.progress_at = now
            contact_import.task_id = uuid.uuid4()
            contact_import.save(update_fields=["attempts", "progress_at", "task_id"])
            logger.warning(
                "Contact import %s stalled at line %d; enqueued again (attempt %d)",
                contact_import.id,
                contact_import.checkpoint_line,
                contact_import.attempts,
            )
            transaction.on_commit(
                functools.partial(_send_import_task, contact_import.id, contact_import.task_id), robust=True
            )
            resumed += 1
    return ImportsReaped(resumed=resumed, failed=failed)


class _Row:
    __slots__ = ("line", "email", "fields", "attributes", "labels")

    def __init__(self, line: int, email: str, fields: dict, attributes: dict, labels: list[str]):
        self.line, self.email, self.fields, self.attributes, self.labels = (
            line,
            email,
            fields,
            attributes,
            labels,
        )


def _parse_row(line: int, header: list[str], cells: list[str]) -> tuple[_Row | None, dict | None]:
    """A row → (_Row, None) or (None, error entry). Blank cells mean "leave as it is" on re-import."""
    values = {column: (cells[i].strip() if i < len(cells) else "") for i, column in enumerate(header)}
    email = normalize_email(values.get("email", ""))
    problems: dict[str, list[str]] = {}
    if len(cells) > len(header):
        problems["row"] = [f"The row has {len(cells)} cells; the header has {len(header)} columns."]
    if any("\x00" in cell for cell in cells):
        problems["row"] = ["The row contains a NUL character."]
    try:
        validate_email(email)
    except DjangoValidationError:
        problems["email"] = ["Enter a valid email address." if email else "This field is required."]
    fields: dict[str, str] = {}
    for name in ("first_name", "last_name"):
        if values.get(name):
            if len(values[name]) > 100:
                problems[name] = ["Must be at most 100 characters."]
            fields[name] = values[name]
    # A quoted cell may hold a line break; in a name or address it would end up in the To header.
    problems.update(single_line_problems({**fields, "email": email}, CONTACT_HEADER_FIELDS))
    if values.get("timezone"):
        if not is_valid_timezone(values["timezone"]):
            problems["timezone"] = [f"'{values['timezone']}' is not a known IANA timezone."]
        fields["timezone"] = values["timezone"]
    if values.get("status"):
        status = values["status"].lower()
        if status not in Contact.Status.values:
            problems["status"] = [f"Must be one of: {', '.join(Contact.Status.values)}."]
        fields["status"] = status
    labels: list[str] = []
    raw_labels = values.get("labels", "")
    for separator in _LABEL_SEPARATORS[1:]:
        raw_labels = raw_labels.replace(separator, _LABEL_SEPARATORS[0])
    for name in (part.strip() for part in raw_labels.split(_LABEL_SEPARATORS[0])):
        if name and name not in labels:
            if len(name) > 100:
                problems["labels"] = [f"Label '{name[:20]}…' is longer than 100 characters."]
            labels.append(name)
    attributes = {column: value for column, value in values.items() if column not in IMPORT_COLUMNS and value != ""}
    if problems:
        return None, {"line": line, "email": email, "errors": problems}
    return _Row(line, email, fields, attributes, labels), None


def _process_chunk(contact_import: ContactImport, header: list[str], records: list[tuple[int, list[str]]]) -> None:
    """Upsert a chunk's contacts and add its counts and errors to `contact_import` (the caller saves it, in
    the same transaction)."""
    workspace = contact_import.workspace
    row_errors: list[dict] = []
    rows: dict[str, _Row] = {}
    repeats = 0
    for line, cells in records:
        row, error = _parse_row(line, header, cells)
        if error:
            row_errors.append(error)
        elif row.email in rows:
            # The same address twice in one chunk: the later row wins, merged over the earlier one.
            earlier = rows[row.email]
            earlier.fields.update(row.fields)
            earlier.attributes.update(row.attributes)
            earlier.labels.extend(name for name in row.labels if name not in earlier.labels)
            repeats += 1
        else:
            rows[row.email] = row

    created = updated = 0
    with transaction.atomic():
        if rows:
            existing = {c.email: c for c in Contact.objects.filter(workspace=workspace, email__in=list(rows))}
            contacts = []
            for email, row in rows.items():
                contact = existing.get(email) or Contact(workspace_id=workspace.id, email=email, attributes={})
                for name, value in row.fields.items():
                    setattr(contact, name, value)
                contact.attributes = {**(contact.attributes or {}), **row.attributes}
                contacts.append(contact)
            # Attribute merging can push a contact over the size cap; such a row is skipped, not stored.
            kept = []
            for contact in contacts:
                try:
                    validate_attributes(contact.attributes)
                except DjangoValidationError as exc:
                    row = rows.pop(contact.email)
                    row_errors.append({"line": row.line, "email": row.email, "errors": {"attributes": exc.messages}})
                    continue
                kept.append(contact)
            now = dj_timezone.now()
            for contact in kept:
                contact.created_at = contact.created_at or now
                contact.updated_at = now
            _contacts_upsert(kept, existing)
            created = sum(1 for c in kept if c.email not in existing)
            updated = len(kept) - created + repeats
            _attach_labels(workspace, rows)
        row_errors.sort(key=lambda entry: entry["line"])
        room = max(0, IMPORT_MAX_STORED_ERRORS - len(contact_import.errors))
        contact_import.errors = contact_import.errors + row_errors[:room]
        contact_import.created_count += created
        contact_import.updated_count += updated
        contact_import.error_count += len(row_errors)


_UPSERT_FIELDS = ("first_name", "last_name", "timezone", "status", "attributes", "updated_at")


def _contacts_upsert(contacts: list[Contact], existing: dict[str, Contact]) -> None:
    """Write a chunk's contacts as they should now be. New addresses are an upsert on (workspace, email), so
    a contact created meanwhile by the API is updated, not duplicated."""
    if connection.vendor != "postgresql":  # SQLite, the embedded default
        Contact.objects.bulk_create(
            [c for c in contacts if c.email not in existing],
            update_conflicts=True,
            unique_fields=["workspace", "email"],
            update_fields=list(_UPSERT_FIELDS),
            batch_size=500,
        )
        Contact.objects.bulk_update([c for c in contacts if c.email in existing], _UPSERT_FIELDS, batch_size=500)
        return
    # PostgreSQL: COPY into a staging table and one INSERT ... ON CONFLICT DO UPDATE for new and existing
    # contacts alike. The ORM's per-value preparation cost more than the database's work (as in the fan-out,
    # docs/decisions/011).
    quote = connection.ops.quote_name
    table = quote(Contact._meta.db_table)
    staged = ("id", "workspace_id", "email", "created_at", *_UPSERT_FIELDS)
    columns = ", ".join(quote(Contact._meta.get_field(name).column) for name in staged)
    updates = ", ".join(f"{quote(name)} = EXCLUDED.{quote(name)}" for name in _UPSERT_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE _import_stage ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY _import_stage ({columns}) FROM STDIN") as copy:
            for c in contacts:  # in the order of `staged`
                copy.write_row(
                    (
                        c.id, c.workspace_id, c.email, c.created_at,
                        c.first_name, c.last_name, c.timezone, c.status, json.dumps(c.attributes), c.updated_at,
                    )
                )  # fmt: skip
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _import_stage "
            f"ON CONFLICT (workspace_id, email) DO UPDATE SET {updates}"
        )
        cursor.execute("DROP TABLE _import_stage")


def _attach_labels(workspace: Workspace, rows: dict[str, _Row]) -> None:
    names = {name for row in rows.values() for name in row.labels}
    if not names:
        return
    Label.objects.bulk_create([Label(workspace=workspace, name=name) for name in names], ignore_conflicts=True)
    label_ids = dict(Label.objects.filter(workspace=workspace, name__in=names).values_list("name", "id"))
    # Ids re-read by email: an upsert that hit a conflict keeps the stored row's id, not the one we made.
    contact_ids = dict(
        Contact.objects.filter(
            workspace=workspace, email__in=[email for email, row in rows.items() if row.labels]
        ).values_list("email", "id")
    )
    through = Contact.labels.through
    links = [
        through(contact_id=contact_ids[email], label_id=label_ids[name])
        for email, row in rows.items()
        if email in contact_ids
        for name in row.labels
    ]
    through.objects.bulk_create(links, ignore_conflicts=True, batch_size=1000)


# --- engagement profiles (docs/decisions/030) -------------------------------------------------------------


@dataclass(frozen=True)
class EngagementEvent:
    """An open or click to fold into a profile: tracked (with the hand-off time of its message) or imported."""

    kind: str  # "opened" | "clicked"
    occurred_at: datetime
    user_agent: str = ""
    handed_off_at: datetime | None = None

    @property
    def machine(self) -> bool:
        if self.kind != "opened":
            return False
        after = (self.occurred_at - self.handed_off_at).total_seconds() if self.handed_off_at else None
        return eng.is_machine_open(user_agent=self.user_agent, seconds_after_handoff=after)


def engagement_record(
    *, workspace_id: UUID, event: EngagementEvent, contact_id: UUID | None = None, email: str = ""
) -> bool | None:
    """Fold one open or click into the contact's profile; a machine open is only counted as one.
    Returns whether it was a machine open, or None when the workspace has no such contact."""
    contacts = Contact.objects.filter(workspace_id=workspace_id)
    contacts = contacts.filter(pk=contact_id) if contact_id else contacts.filter(email=normalize_email(email))
    found = contacts.values_list("pk", flat=True).first()
    if found is None:
        return None
    return engagement_record_many(workspace_id=workspace_id, events=[(found, event)])[0]


def engagement_record_many(*, workspace_id: UUID, events: list[tuple[UUID, EngagementEvent]]) -> list[bool]:
    """Fold many opens and clicks of the workspace's contacts (ids the caller found in this workspace) in a
    few statements: the profiles are created, locked, folded in memory and written back together.
    Returns, per event, whether it was a machine open."""
    owned = set(
        Contact.objects.filter(workspace_id=workspace_id, pk__in={c for c, _ in events}).values_list("pk", flat=True)
    )
    machine = [event.machine for _, event in events]
    with transaction.atomic():
        profiles = _profiles_for_update(workspace_id=workspace_id, contact_ids=owned)
        for (contact_id, event), is_machine in zip(events, machine, strict=True):
            if contact_id in owned:
                _fold_event(profiles[contact_id], event, machine=is_machine)
        _profiles_save(profiles.values(), ["machine_opens", "opens", "clicks", "last_engaged_at"])
    return machine


PROFILE_VECTOR_FIELDS = ["engagement", "exposure", "decayed_to"]


def _profiles_for_update(*, workspace_id: UUID, contact_ids: set[UUID]) -> dict[UUID, EngagementProfile]:
    EngagementProfile.objects.bulk_create(
        [EngagementProfile(contact_id=c, workspace_id=workspace_id) for c in contact_ids], ignore_conflicts=True
    )
    rows = EngagementProfile.objects.select_for_update().filter(workspace_id=workspace_id, contact_id__in=contact_ids)
    return {p.contact_id: p for p in rows.order_by("contact_id")}


def _profiles_save(profiles: Iterable[EngagementProfile], fields: list[str]) -> None:
    profiles = list(profiles)
    now = dj_timezone.now()
    for profile in profiles:
        profile.updated_at = now
    bulk_update_by_pk(EngagementProfile, profiles, [*PROFILE_VECTOR_FIELDS, *fields, "updated_at"])


def _move_to(profile: EngagementProfile, at: datetime) -> None:
    """Decay both vectors to `at` when it is newer than they are: readers decay them with one factor."""
    if profile.decayed_to is not None and at > profile.decayed_to:
        factor = eng.decay((at - profile.decayed_to).total_seconds())
        profile.engagement = eng.to_bytes(eng.vector(profile.engagement) * factor)
        profile.exposure = eng.to_bytes(eng.vector(profile.exposure) * factor)
    if profile.decayed_to is None or at > profile.decayed_to:
        profile.decayed_to = at


def _add(data: bytes, profile: EngagementProfile, *, at: datetime, amount: float) -> bytes:
    """`amount` in the hour of week of `at`, decayed from `at` to the profile's instant."""
    values = eng.vector(data)
    values[eng.hour_of_week(at)] += amount * eng.decay((profile.decayed_to - at).total_seconds())
    return eng.to_bytes(values)


def _fold_event(profile: EngagementProfile, event: EngagementEvent, *, machine: bool) -> None:
    if machine:
        profile.machine_opens += 1
        return
    _move_to(profile, event.occurred_at)
    profile.engagement = _add(profile.engagement, profile, at=event.occurred_at, amount=eng.weight(event.kind))
    if event.kind == "clicked":
        profile.clicks += 1
    else:
        profile.opens += 1
    if profile.last_engaged_at is None or event.occurred_at > profile.last_engaged_at:
        profile.last_engaged_at = event.occurred_at


def engagement_record_sends(*, workspace_id: UUID, sends: list[tuple[UUID, datetime]]) -> int:
    """Fold our own hand-offs into the contacts' exposure (by hour of week), so the hours we happen to send
    in are not mistaken for the hours a contact prefers. One chunk (hundreds to thousands) per call, in a
    few statements; returns how many were folded."""
    ids = {contact_id for contact_id, _ in sends}
    owned = set(Contact.objects.filter(workspace_id=workspace_id, pk__in=ids).values_list("pk", flat=True))
    folded = 0
    with transaction.atomic():
        profiles = _profiles_for_update(workspace_id=workspace_id, contact_ids=owned)
        for contact_id, sent_at in sends:
            if contact_id in owned:
                profile = profiles[contact_id]
                _move_to(profile, sent_at)
                profile.exposure = _add(profile.exposure, profile, at=sent_at, amount=1.0)
                profile.sends += 1
                folded += 1
        _profiles_save(profiles.values(), ["sends"])
    return folded


def engagement_profiles_rebuild(
    *,
    workspace_id: UUID,
    contact_ids: list[UUID],
    events: list[tuple[UUID, EngagementEvent]],
    sends: list[tuple[UUID, datetime]],
) -> int:
    """Replace these contacts' profiles with ones folded afresh from their whole history (rebuild_engagement),
    by the same steps as the live path. Contacts without any history are left without a profile."""
    owned = set(Contact.objects.filter(workspace_id=workspace_id, pk__in=contact_ids).values_list("pk", flat=True))
    profiles: dict[UUID, EngagementProfile] = {}

    def profile(contact_id: UUID) -> EngagementProfile:
        if contact_id not in profiles:
            profiles[contact_id] = EngagementProfile(contact_id=contact_id, workspace_id=workspace_id)
        return profiles[contact_id]

    timeline = [(e.occurred_at, c, e) for c, e in events if c in owned]
    timeline += [(at, c, None) for c, at in sends if c in owned]
    for at, contact_id, event in sorted(timeline, key=lambda item: item[0]):
        target = profile(contact_id)
        if event is not None:
            _fold_event(target, event, machine=event.machine)
        else:
            _move_to(target, at)
            target.exposure = _add(target.exposure, target, at=at, amount=1.0)
            target.sends += 1
    with transaction.atomic():
        EngagementProfile.objects.filter(workspace_id=workspace_id, contact_id__in=owned).delete()
        EngagementProfile.objects.bulk_create(list(profiles.values()), batch_size=1000)
    return len(profiles)
