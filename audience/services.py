"""Audience use cases that write: contacts, labels, segments, suppressions and CSV imports.

The API, the admin, the management command and the Celery task all come through here."""

import csv
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone as dj_timezone

from accounts.models import Workspace
from audience.models import (
    Contact,
    ContactImport,
    Label,
    Segment,
    Suppression,
    normalize_email,
    validate_attributes,
)
from audience.segments import rule_label_ids, validate_rules
from common import errors
from common.db import unique_or_400
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


def _decode_csv(payload: bytes) -> str:
    try:
        # utf-8-sig: spreadsheet programs put a BOM in front of the header.
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise errors.ValidationError.for_field(
            "file",
            f"The file is not UTF-8 text (invalid byte at position {exc.start}); export it as CSV UTF-8.",
        ) from None


def _header(reader: Iterator[list[str]]) -> list[str]:
    try:
        raw = next(reader)
    except StopIteration:
        raise errors.ValidationError.for_field("file", "The file is empty; it needs a header row.") from None
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
    """Check the upload (size, encoding, header) and store it as a pending import. Nothing is enqueued:
    `contact_import_start` does that for the API; the management command processes it in-process."""
    limit = settings.CONTACT_IMPORT_MAX_BYTES
    payload = fileobj.read(limit + 1)
    if len(payload) > limit:
        raise errors.PayloadTooLarge(f"The file is over the {limit}-byte limit for a contact import.")
    text = _decode_csv(payload)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        _header(reader)
        total = sum(1 for row in reader if any(cell.strip() for cell in row))
    except csv.Error as exc:
        raise errors.ValidationError.for_field("file", f"The file is not valid CSV: {exc}.") from None
    return ContactImport.objects.create(
        workspace=workspace, filename=(filename or "")[:255], payload=payload, total_rows=total
    )


def contact_import_start(*, workspace: Workspace, filename: str, fileobj: BinaryIO) -> ContactImport:
    """Store the upload and process it in a worker once the row is committed."""
    from audience.tasks import contact_import_process as task

    def enqueue() -> None:
        try:
            task.delay(import_id)
        except Exception as exc:  # broker unreachable: say so, and leave no import pending forever
            logger.exception("Could not enqueue contact import %s", import_id)
            ContactImport.objects.filter(pk=import_id, status=ContactImport.Status.PENDING).update(
                status=ContactImport.Status.FAILED,
                failure_reason="The task queue was unreachable; upload the file again.",
                finished_at=dj_timezone.now(),
            )
            raise errors.ServiceUnavailable("The task queue is unreachable; the import was not started.") from exc

    with transaction.atomic():
        contact_import = contact_import_create(workspace=workspace, filename=filename, fileobj=fileobj)
        import_id = str(contact_import.id)
        # After commit, so the worker never looks for a row it cannot see yet.
        transaction.on_commit(enqueue)
    return contact_import


def contact_import_process(*, import_id: UUID | str, on_progress: Callable[[int], None] | None = None) -> bool:
    """Upsert the contacts of a pending import in chunks. Returns False (and does nothing) when the import
    is not pending any more: a redelivered task or a second call never processes a file twice."""
    claimed = ContactImport.objects.filter(pk=import_id, status=ContactImport.Status.PENDING).update(
        status=ContactImport.Status.PROCESSING, started_at=dj_timezone.now()
    )
    if not claimed:
        return False
    contact_import = ContactImport.objects.select_related("workspace").get(pk=import_id)
    try:
        _process_rows(contact_import, on_progress)
    except Exception as exc:  # the import must end in a state a user can read, whatever broke
        logger.exception("Contact import %s failed", import_id)
        ContactImport.objects.filter(pk=import_id).update(
            status=ContactImport.Status.FAILED,
            failure_reason=f"{type(exc).__name__}: {exc}"[:500],
            finished_at=dj_timezone.now(),
        )
        return True
    ContactImport.objects.filter(pk=import_id).update(
        status=ContactImport.Status.COMPLETED, payload=None, finished_at=dj_timezone.now()
    )
    return True


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


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells), header = line 1, skipping blank lines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    line = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield line, cells
        line = reader.line_num + 1


def _process_rows(contact_import: ContactImport, on_progress: Callable[[int], None] | None) -> None:
    text = _decode_csv(bytes(contact_import.payload or b""))
    header = _header(csv.reader(io.StringIO(text, newline="")))
    chunk_size = settings.CONTACT_IMPORT_CHUNK_SIZE
    chunk: list[tuple[int, list[str]]] = []
    for record in _records(text):
        chunk.append(record)
        if len(chunk) >= chunk_size:
            _process_chunk(contact_import, header, chunk)
            if on_progress:
                on_progress(len(chunk))
            chunk = []
    if chunk:
        _process_chunk(contact_import, header, chunk)
        if on_progress:
            on_progress(len(chunk))


def _process_chunk(contact_import: ContactImport, header: list[str], records: list[tuple[int, list[str]]]) -> None:
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
                contact = existing.get(email) or Contact(workspace=workspace, email=email, attributes={})
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
            fields = ["first_name", "last_name", "timezone", "status", "attributes", "updated_at"]
            now = dj_timezone.now()
            for contact in kept:
                contact.updated_at = now
            # New addresses: an upsert, so a contact created meanwhile by the API is updated, not duplicated.
            Contact.objects.bulk_create(
                [c for c in kept if c.email not in existing],
                update_conflicts=True,
                unique_fields=["workspace", "email"],
                update_fields=fields,
                batch_size=500,
            )
            Contact.objects.bulk_update([c for c in kept if c.email in existing], fields, batch_size=500)
            created = sum(1 for c in kept if c.email not in existing)
            updated = len(kept) - created + repeats
            _attach_labels(workspace, rows)
        row_errors.sort(key=lambda entry: entry["line"])
        stored = ContactImport.objects.select_for_update().get(pk=contact_import.pk)
        room = max(0, IMPORT_MAX_STORED_ERRORS - len(stored.errors))
        stored.errors = stored.errors + row_errors[:room]
        stored.created_count += created
        stored.updated_count += updated
        stored.error_count += len(row_errors)
        stored.save(update_fields=["errors", "created_count", "updated_count", "error_count"])


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
