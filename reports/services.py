"""Report writes: the aggregator that keeps the rollups current, the campaign's `reported` step, and the
CSV export (docs/decisions/050 and 051)."""

import csv
import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Subquery
from django.utils import timezone

from accounts.models import Workspace
from campaigns import errors as campaign_errors
from campaigns.models import Campaign
from campaigns.services import campaign_mark_reported
from common.db import try_advisory_xact_lock
from delivery.models import Delivery, Event
from reports import selectors
from reports.models import (
    AggregationState,
    LinkClicker,
    LinkReport,
    OpenSlot,
    PendingEvent,
    RecipientActivity,
    ReportExport,
    RunReport,
)

logger = logging.getLogger(__name__)

E = Event.Type
_ADVISORY_KEY = 0x7265706F7274  # "report": one aggregator at a time, however many beats and workers
# Event type -> the run counter it adds one to. Opens and clicks are counted per recipient below.
_COUNTERS = {
    E.SENT: "sent",
    E.DELIVERED: "delivered",
    E.BOUNCED: "bounced",
    E.FAILED: "failed",
    E.UNSUBSCRIBED: "unsubscribes",
    E.COMPLAINED: "complaints",
}
RUN_FIELDS = selectors.COUNTS
SLOT = timedelta(minutes=15)


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def slot_of(instant: datetime) -> datetime:
    return instant.replace(minute=instant.minute - instant.minute % 15, second=0, microsecond=0)


@dataclass
class AggregateResult:
    events: int = 0
    ticks: int = 0
    pending: int = 0
    reported: list[str] = field(default_factory=list)
    busy: bool = False


# --- the aggregator ------------------------------------------------------------------------------------


def reports_aggregate(*, batch_size: int | None = None, time_budget_seconds: float | None = None) -> AggregateResult:
    """Count every event not counted yet into the rollups, in batches of `batch_size`, until caught up or
    the time budget is spent (the next tick goes on); then move sent campaigns with figures to `reported`.
    Safe to run concurrently and twice: one aggregator at a time holds the lock, the others return."""
    batch_size = batch_size or settings.REPORTS_AGGREGATE_BATCH_SIZE
    budget = settings.REPORTS_AGGREGATE_TIME_BUDGET_SECONDS if time_budget_seconds is None else time_budget_seconds
    started = time.monotonic()
    result = AggregateResult()
    while True:
        counted = _aggregate_batch(batch_size=batch_size, result=result)
        if counted is None:
            result.busy = True
            break
        result.events += counted
        result.ticks += 1
        if counted < batch_size or time.monotonic() - started >= budget:
            break
    result.reported = reports_mark_campaigns_reported()
    return result


def _aggregate_batch(*, batch_size: int, result: AggregateResult) -> int | None:
    with transaction.atomic():
        if not try_advisory_xact_lock(_ADVISORY_KEY):
            return None
        # A write first: on SQLite it takes the database's write lock before anything is read, so two
        # aggregators can never both read the same cursor.
        AggregationState.objects.get_or_create(pk=1)
        AggregationState.objects.filter(pk=1).update(updated_at=timezone.now())
        state = AggregationState.objects.get(pk=1)
        # Read before the events: a transaction that is no longer running here has committed (or rolled
        # back) before the reads below, which therefore see its rows.
        oldest_running = _oldest_running_transaction_start()
        pending = dict(PendingEvent.objects.values_list("event_id", "noticed_at"))
        rows = list(
            Event.objects.filter(id__gt=state.last_event_id).order_by("id").values_list(*_EVENT_COLUMNS)[:batch_size]
        )
        late = list(Event.objects.filter(id__in=list(pending)).values_list(*_EVENT_COLUMNS)) if pending else []
        noticed_at = _database_now()

        _settle_pending(pending=pending, late=late, oldest_running=oldest_running, now=noticed_at)
        if rows:
            last = rows[-1][0]
            _hold_back_gaps(rows=rows, after=state.last_event_id, noticed_at=noticed_at)
            AggregationState.objects.filter(pk=1).update(last_event_id=last)
        _count(rows + late, now=noticed_at)
        result.pending = PendingEvent.objects.count()
        return len(rows) + len(late)


_EVENT_COLUMNS = ("id", "type", "occurred_at", "email", "workspace_id", "campaign_id", "run_id", "data")


def _database_now() -> datetime:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    return timezone.now()


def _oldest_running_transaction_start() -> datetime | None | bool:
    """When the oldest transaction still running in this database began (None: none is). False when that
    cannot be known: another role's sessions hide their times unless ours may read all statistics."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(xact_start), bool_or(state IS NULL AND backend_type = 'client backend') "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        oldest, hidden = cursor.fetchone()
    return False if hidden else oldest


def _hold_back_gaps(*, rows: list, after: int, noticed_at: datetime) -> None:
    """Ids between the old cursor and the last id read that no committed event has yet. On PostgreSQL a
    transaction that took a smaller id may commit after one with a larger id has been read; on SQLite
    writers hold the database's one write lock from their first id to their commit, so every smaller id is
    already committed or will never be (a rollback) and nothing needs holding back."""
    if connection.vendor != "postgresql":
        return
    seen = {row[0] for row in rows}
    missing = [event_id for event_id in range(after + 1, rows[-1][0]) if event_id not in seen]
    if missing:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {PendingEvent._meta.db_table} (event_id, noticed_at) "
                "SELECT unnest(%s::bigint[]), %s ON CONFLICT DO NOTHING",
                [missing, noticed_at],
            )


def _settle_pending(*, pending: dict, late: list, oldest_running, now: datetime) -> None:
    """Forget the held-back ids that are now counted, and those that no running transaction can still
    write: every transaction that was running when the id was noticed has ended."""
    found = {row[0] for row in late}
    max_age = timedelta(seconds=settings.REPORTS_PENDING_MAX_AGE_SECONDS)
    done = []
    for event_id, noticed_at in pending.items():
        if event_id in found or oldest_running is None or (oldest_running and noticed_at <= oldest_running):
            done.append(event_id)
        elif now - noticed_at > max_age:
            # Only when the running transactions cannot be seen (False above), or one has run this long.
            logger.warning("reports: event id %s never appeared in %s; no longer waiting for it", event_id, max_age)
            done.append(event_id)
    if done:
        PendingEvent.objects.filter(event_id__in=done).delete()


class _Batch:
    """The rollup rows one batch of events touches, loaded once, changed in memory, written back."""

    def __init__(self, rows: list, now: datetime):
        self.rows = [row for row in rows if row[6] is not None]  # run events only
        self.now = now
        run_ids = {row[6] for row in self.rows}
        self.runs = {r.run_id: r for r in RunReport.objects.filter(run_id__in=run_ids)}
        tracked = [row for row in self.rows if row[1] in (E.OPENED, E.CLICKED)]
        self.activity: dict[tuple, RecipientActivity] = {}
        self.links: dict[tuple, LinkReport] = {}
        self.slots: dict[tuple, OpenSlot] = {}
        self.clickers: set[tuple] = set()
        self.new_clickers: list[LinkClicker] = []
        by_run: dict[UUID, set[str]] = {}
        for row in tracked:
            by_run.setdefault(row[6], set()).add(row[3])
        for run_id, emails in by_run.items():
            for act in _with_emails(RecipientActivity, run_id=run_id, emails=emails):
                self.activity[(run_id, act.email)] = act
        clicks = [row for row in tracked if row[1] == E.CLICKED]
        hashes_by_run: dict[UUID, set[str]] = {}
        for row in clicks:
            hashes_by_run.setdefault(row[6], set()).add(url_hash(_url(row)))
        for run_id, hashes in hashes_by_run.items():
            for link in LinkReport.objects.filter(run_id=run_id, url_hash__in=hashes):
                self.links[(run_id, link.url_hash)] = link
            self.clickers.update(
                (c.run_id, c.url_hash, c.email)
                for c in _with_emails(LinkClicker, run_id=run_id, emails=by_run[run_id])
                if c.url_hash in hashes
            )
        slot_keys = {(row[6], slot_of(row[2])) for row in tracked if row[1] == E.OPENED}
        for run_id in {key[0] for key in slot_keys}:
            slots = [key[1] for key in slot_keys if key[0] == run_id]
            for slot in OpenSlot.objects.filter(run_id=run_id, slot__in=slots):
                self.slots[(run_id, slot.slot)] = slot

    def run(self, row) -> RunReport:
        run = self.runs.get(row[6])
        if run is None:
            run = RunReport(
                run_id=row[6],
                campaign_id=row[5],
                workspace_id=row[4],
                first_aggregated_at=self.now,
                updated_at=self.now,
            )
            self.runs[row[6]] = run
        return run

    def count(self) -> None:
        for row in self.rows:
            run = self.run(row)
            kind = row[1]
            if kind in _COUNTERS:
                setattr(run, _COUNTERS[kind], getattr(run, _COUNTERS[kind]) + 1)
            elif kind in (E.OPENED, E.CLICKED):
                self._track(run, row)

    def _track(self, run: RunReport, row) -> None:
        _, kind, occurred_at, email, _, campaign_id, run_id, data = row
        act = self.activity.get((run_id, email))
        if act is None:
            act = self.activity[(run_id, email)] = RecipientActivity(run_id=run_id, email=email)
        opened_before, clicked_before = act.first_open_at is not None, act.clicks > 0
        if kind == E.OPENED and (data or {}).get("machine") is True:
            act.machine_opens += 1
            run.machine_opens += 1
            return
        if kind == E.OPENED:
            act.opens += 1
            run.opens += 1
            slot = self.slots.get((run_id, slot_of(occurred_at)))
            if slot is None:
                slot = self.slots[(run_id, slot_of(occurred_at))] = OpenSlot(
                    run_id=run_id, campaign_id=campaign_id, slot=slot_of(occurred_at)
                )
            slot.opens += 1
        else:
            act.clicks += 1
            run.clicks += 1
            act.first_click_at = _earliest(act.first_click_at, occurred_at)
            self._click_link(run_id=run_id, campaign_id=campaign_id, email=email, url=_url(row))
        # A click is an open too: the pixel may have been blocked (as delivery stamps `opened_at`).
        act.first_open_at = _earliest(act.first_open_at, occurred_at)
        run.unique_opens += not opened_before
        run.unique_clicks += act.clicks > 0 and not clicked_before

    def _click_link(self, *, run_id, campaign_id, email: str, url: str) -> None:
        digest = url_hash(url)
        link = self.links.get((run_id, digest))
        if link is None:
            link = self.links[(run_id, digest)] = LinkReport(
                run_id=run_id, campaign_id=campaign_id, url_hash=digest, url=url
            )
        link.clicks += 1
        if (run_id, digest, email) not in self.clickers:
            self.clickers.add((run_id, digest, email))
            self.new_clickers.append(LinkClicker(run_id=run_id, url_hash=digest, email=email))
            link.unique_clicks += 1

    def save(self) -> None:
        for run in self.runs.values():
            run.updated_at = self.now
        RunReport.objects.bulk_create(
            list(self.runs.values()),
            update_conflicts=True,
            unique_fields=["run_id"],
            update_fields=[*RUN_FIELDS, "updated_at"],
        )
        _upsert_activity(list(self.activity.values()))
        LinkReport.objects.bulk_create(
            list(self.links.values()),
            update_conflicts=True,
            unique_fields=["run_id", "url_hash"],
            update_fields=["clicks", "unique_clicks"],
        )
        LinkClicker.objects.bulk_create(self.new_clickers, batch_size=2000)
        OpenSlot.objects.bulk_create(
            list(self.slots.values()), update_conflicts=True, unique_fields=["run_id", "slot"], update_fields=["opens"]
        )


def _with_emails(model, *, run_id: UUID, emails: set[str]):
    """Rows of a run for these recipients. On PostgreSQL one array parameter (`= ANY`): an IN list of
    20,000 placeholders cost more to build and parse than the query took to run."""
    if connection.vendor != "postgresql":
        return model.objects.filter(run_id=run_id, email__in=emails)
    table = model._meta.db_table
    return model.objects.raw(f"SELECT * FROM {table} WHERE run_id = %s AND email = ANY(%s)", [run_id, list(emails)])


_ACTIVITY_COLUMNS = ("run_id", "email", "opens", "machine_opens", "clicks", "first_open_at", "first_click_at")


def _upsert_activity(rows: list[RecipientActivity]) -> None:
    """Write the recipients' absolute counts. On PostgreSQL one statement over arrays: a batch touches up to
    REPORTS_AGGREGATE_BATCH_SIZE rows, and Django's per-object preparation was most of the batch's time
    (profiled: 3.5 of 8.9 s for 20,000 events)."""
    if connection.vendor != "postgresql":
        RecipientActivity.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["run_id", "email"], update_fields=_ACTIVITY_COLUMNS[2:],
            batch_size=2000,
        )  # fmt: skip
        return
    types = ("uuid", "text", "int", "int", "int", "timestamptz", "timestamptz")
    columns = [[getattr(row, name) for row in rows] for name in _ACTIVITY_COLUMNS]
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _ACTIVITY_COLUMNS[2:])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {RecipientActivity._meta.db_table} ({', '.join(_ACTIVITY_COLUMNS)}) "
            f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) "
            f"ON CONFLICT (run_id, email) DO UPDATE SET {updates}",
            columns,
        )


def _url(row) -> str:
    return str((row[7] or {}).get("url", ""))


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _count(rows: list, *, now: datetime) -> None:
    if not rows:
        return
    batch = _Batch(rows, now)
    batch.count()
    batch.save()


def reports_mark_campaigns_reported() -> list[str]:
    """Sent campaigns whose figures exist become `reported` (campaigns.services.campaign_mark_reported, under
    the campaign's lock). One whose lock is busy is tried again on the next tick."""
    moved = []
    candidates = Campaign.objects.filter(
        status=Campaign.Status.SENT, id__in=Subquery(RunReport.objects.values("campaign_id"))
    ).select_related("workspace")
    for campaign in candidates:
        try:
            if campaign_mark_reported(workspace=campaign.workspace, campaign_id=campaign.pk):
                moved.append(str(campaign.pk))
        except campaign_errors.CampaignTransitionInProgress:
            continue
    return moved


# --- the export ----------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "run_id",
    "email",
    "status",
    "sent_at",
    "first_open_at",
    "first_click_at",
    "opens",
    "clicks",
    "bounce_reason",
)
# OWASP "CSV Injection": a cell a spreadsheet would read as a formula gets a leading apostrophe.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def report_export_start(
    *, workspace: Workspace, campaign_id: UUID | str, run_id: UUID | str | None = None
) -> ReportExport:
    """Queue a CSV of the campaign's (or one run's) per-recipient results; built by a `default` worker."""
    campaign = selectors.report_campaign(workspace=workspace, campaign_id=campaign_id, run_id=run_id)
    export = ReportExport.objects.create(
        workspace=workspace,
        campaign_id=campaign.pk,
        run_id=run_id,
        expires_at=timezone.now() + timedelta(hours=settings.REPORTS_EXPORT_TTL_HOURS),
    )
    transaction.on_commit(lambda: _enqueue("reports.tasks.build_export", str(export.pk)))
    return export


def _enqueue(task: str, *args) -> None:
    current_app.send_task(task, args=list(args), queue="default")


def report_export_build(*, export_id: UUID | str, now: datetime | None = None) -> bool:
    """Write the CSV: one row per recipient (per run), read through a server-side cursor and written to a
    temporary file, then handed to the default storage, so memory stays flat however many rows there are.
    Claimed by a guarded UPDATE (a redelivered task finds it taken and does nothing); a claim older than
    the task time limit belongs to a dead worker and may be taken again."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    claimed = ReportExport.objects.filter(pk=export_id, status=ReportExport.Status.PENDING).update(
        status=ReportExport.Status.RUNNING, started_at=now
    ) or ReportExport.objects.filter(pk=export_id, status=ReportExport.Status.RUNNING, started_at__lt=stale).update(
        started_at=now
    )
    if not claimed:
        return False
    export = ReportExport.objects.get(pk=export_id)
    try:
        name, rows = _write_export(export)
    except Exception as exc:
        logger.exception("reports: export %s failed", export_id)
        ReportExport.objects.filter(pk=export_id, started_at=now).update(
            status=ReportExport.Status.FAILED, error=str(exc)[:500], finished_at=timezone.now()
        )
        return False
    ReportExport.objects.filter(pk=export_id, started_at=now).update(
        status=ReportExport.Status.DONE, file=name, rows=rows, finished_at=timezone.now()
    )
    return True


def _export_query(export: ReportExport) -> tuple[str, list]:
    d, a = Delivery._meta.db_table, RecipientActivity._meta.db_table
    sql = (
        f"SELECT d.run_id, d.email, d.status, d.sent_at, a.first_open_at, a.first_click_at, "
        f"COALESCE(a.opens, 0), COALESCE(a.clicks, 0), CASE WHEN d.status = %s THEN d.error ELSE '' END "
        f"FROM {d} d LEFT JOIN {a} a ON a.run_id = d.run_id AND a.email = d.email "
        f"WHERE d.workspace_id = %s AND d.campaign_id = %s"
    )
    params = [Delivery.Status.BOUNCED, _db_uuid(export.workspace_id), _db_uuid(export.campaign_id)]
    if export.run_id:
        sql += " AND d.run_id = %s"
        params.append(_db_uuid(export.run_id))
    return sql + " ORDER BY d.id", params


def _db_uuid(value):
    # SQLite stores Django's UUIDs as 32 hex digits; PostgreSQL takes the UUID itself.
    return value if connection.vendor == "postgresql" else UUID(str(value)).hex


def _iso(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):  # SQLite returns timestamps as text from a raw query
        value = datetime.fromisoformat(value)
    return (value.astimezone(UTC) if value.tzinfo else value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_export(export: ReportExport) -> tuple[str, int]:
    sql, params = _export_query(export)
    rows = 0
    with tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        with transaction.atomic(), connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while chunk := cursor.fetchmany(settings.REPORTS_EXPORT_CHUNK_SIZE):
                for run_id, email, status, sent_at, first_open, first_click, opens, clicks, reason in chunk:
                    writer.writerow(
                        [
                            str(UUID(str(run_id))),
                            csv_safe(email),
                            status,
                            _iso(sent_at),
                            _iso(first_open),
                            _iso(first_click),
                            opens,
                            clicks,
                            csv_safe(reason),
                        ]
                    )
                rows += len(chunk)
        out.seek(0)
        name = default_storage.save(f"reports/exports/{export.pk}.csv", File(out))
    return name, rows


def report_exports_expire(*, now: datetime | None = None) -> int:
    """Delete exports past their expiry, files first: a download link works for REPORTS_EXPORT_TTL_HOURS."""
    now = now or timezone.now()
    expired = list(ReportExport.objects.filter(expires_at__lt=now))
    for export in expired:
        if export.file:
            default_storage.delete(export.file)
    ReportExport.objects.filter(pk__in=[export.pk for export in expired]).delete()
    return len(expired)
