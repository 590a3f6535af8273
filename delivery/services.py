"""The send side of the delivery engine and the writes of the tracking endpoints (docs/architecture.md,
"Delivery engine" and "Events").

`delivery_send_batch` is what the bulk workers run. Its guarantees, and what they cost:

- Claim: one conditional UPDATE takes only rows that are `queued`, due (within a small tolerance, for an
  ETA task that starts a moment early), not leased by a live claim, and whose run may send (the run's
  owner answers that, see delivery.sources). A redelivered or duplicated task finds nothing to claim.
- Mark: a chunk of DELIVERY_MARK_EVERY rows goes to `sending` in one statement (which also writes the
  previous chunk's outcomes), and before each hand-off the batch's one-row progress record (SendProgress)
  moves to that delivery (over SMTP its answer is read after the envelope, before the message itself goes).
  A worker killed mid-batch therefore leaves exactly one row in doubt (the one at the progress position,
  for the reaper's policy); the chunk's rows below it were accepted and are settled `sent`, those above it
  and the later chunks' `queued` rows were never attempted. docs/decisions/010, 100, 101.
- Every write after the claim carries `WHERE lease_until = <this claim's lease>` (a fencing token):
  once a lease has expired and another worker has re-claimed a row, this call can no longer change it. A
  live batch renews the lease (rows and progress record together) once half of it is gone.
- The events of the outcomes are written by the mark statement itself (a data-modifying CTE on PostgreSQL),
  so an outcome and its event commit together: none is lost when a worker is killed, none doubled by
  concurrent batches (docs/decisions/015 says what that costs).
- The run's owner hears of progress once per batch (`deliveries_counted`) and of the end of a run when
  nothing is left queued or in flight (`run_deliveries_final`), through delivery.signals.

Tracking writes take a delivery id read from a signed token (delivery.tracking): the signature is the
authority there, there is no API key and so no workspace to scope by.
"""

import itertools
import logging
import select
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Workspace, normalize_domain
from audience.models import Contact, Suppression, normalize_email
from audience.services import (
    EngagementEvent,
    contact_suppress,
    engagement_profiles_rebuild,
    engagement_record,
    engagement_record_many,
    engagement_record_sends,
)
from common import errors
from common.addresses import domain_of
from common.db import unique_or_400
from common.quiet_hours import quiet_hours_release
from common.rendering import TemplateBudgetExceeded, TemplateRenderError
from common.timezones import is_valid_timezone
from delivery import metrics as delivery_metrics
from delivery import selectors, sending, signals, tracking
from delivery.esp_events import EspEvent as InboundEspEvent
from delivery.mime import HeaderInjection
from delivery.models import Delivery, EspEvent, Event, SendProgress, Throttle
from delivery.sources import message_sources, run_source
from delivery.throttle import SendThrottle
from delivery.transport import ConnectionLost, SendError, Transport, backoff_delay

logger = logging.getLogger(__name__)

DEFAULTS = {
    # How long a claim is exclusive. Longer than a batch can take (the task's hard time limit), so a
    # live worker never loses its rows; after it, a crashed batch's rows can be claimed again.
    "DELIVERY_LEASE_SECONDS": 60,
    # Rows marked `sending` (and outcomes written) per statement; the progress row says which went out.
    "DELIVERY_MARK_EVERY": 100,
    # A task enqueued with eta=send_at may start a moment early (clock skew between beat and workers).
    "DELIVERY_CLAIM_TOLERANCE_SECONDS": 2,
    "DELIVERY_MAX_ATTEMPTS": 5,
    "DELIVERY_RETRY_BASE_SECONDS": 60,
    "DELIVERY_RETRY_MAX_SECONDS": 3600,
    # Longest the send loop sleeps for a throttle token; beyond it the rest of the batch is requeued.
    "DELIVERY_THROTTLE_MAX_WAIT_SECONDS": 2.0,
    # When the mail server cannot be reached at all, the batch is requeued this far ahead.
    "DELIVERY_CONNECT_RETRY_SECONDS": 60,
}


def delivery_setting(name: str):
    return getattr(settings, name, DEFAULTS[name])


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the n-th failed attempt: 60s, 120s, 240s, ... capped at an hour (by default)."""
    return backoff_delay(
        attempts,
        base_seconds=delivery_setting("DELIVERY_RETRY_BASE_SECONDS"),
        max_seconds=delivery_setting("DELIVERY_RETRY_MAX_SECONDS"),
    )


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0  # rendering errors, refused sender, attempts exhausted
    bounced: int = 0
    skipped: int = 0  # suppressed at send time
    retrying: int = 0  # temporary (4xx) refusal: queued again with a later send_at
    deferred: int = 0  # claimed but not attempted (throttled, server unreachable): queued again
    cancelled: int = 0  # their campaign or run was cancelled


@dataclass
class _Outcome:
    """One row's change in the next marking statement."""

    id: int
    from_status: str
    status: str
    attempt: int = 0
    sent_at: datetime | None = None
    message_id: str | None = None
    error: str | None = None
    send_at: datetime | None = None
    keep_lease: bool = False


_TABLE = Delivery._meta.db_table
_EVENT_TABLE = Event._meta.db_table
_PROGRESS_TABLE = SendProgress._meta.db_table
S = Delivery.Status
E = Event.Type
# The event a delivery's new status stands for; `sending` has none (it is not an outcome).
EVENT_OF_STATUS = {
    S.SENT: E.SENT,
    S.QUEUED: E.DEFERRED,  # only ever written as an outcome when a 4xx sends a row back to the queue
    S.BOUNCED: E.BOUNCED,
    S.FAILED: E.FAILED,
    S.UNCERTAIN: E.FAILED,
    S.SKIPPED: E.CANCELLED,  # suppressed at send time: withdrawn before it was sent
    S.CANCELLED: E.CANCELLED,
}
_EVENT_COLUMNS = "workspace_id, type, occurred_at, email, message_id, delivery_id, campaign_id, run_id, data"


def _dt(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _lease_match() -> str:
    """The fencing condition of a write found by primary key. A plain `lease_until = %s` let PostgreSQL
    pick the lease index instead (a fresh lease value looks rare to the planner) and scan every row of the
    batch: 0.8 ms a write on a 500-row batch instead of 0.1 ms. IS NOT DISTINCT FROM is not indexable, so
    the lease stays a filter; the lease is never NULL here, so it means the same."""
    return "lease_until IS NOT DISTINCT FROM %s" if _is_postgres() else "lease_until = %s"


def _subquery(queryset) -> tuple[str, list]:
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def _event_select(*, source: str, occurred_at: datetime, flags: tuple[str, ...] = ()) -> tuple[str, list]:
    """SELECT list turning delivery rows (`source`: a table or a CTE with Delivery's columns) into event
    rows: the type from the row's status, `reason` from its error, `retry_at` from its send_at when it was
    deferred, and each of `flags` set to true in the data."""
    cases = " ".join(f"WHEN '{status}' THEN '{event}'" for status, event in EVENT_OF_STATUS.items())
    if _is_postgres():
        build, true = "jsonb_build_object", "true"
        retry_at = "to_char(send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    else:
        build, true = "json_object", "json('true')"
        retry_at = "strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', send_at)"
    flag_sql = "".join(f", '{flag}', {true}" for flag in flags)
    data = (
        f"CASE WHEN status = 'sent' THEN {build}({flag_sql.lstrip(', ')}) "
        f"WHEN status = 'queued' THEN {build}('reason', error, 'retry_at', {retry_at}{flag_sql}) "
        f"ELSE {build}('reason', error{flag_sql}) END"
    )
    # Every event of a sandbox delivery says so (docs/decisions/061).
    if _is_postgres():
        data = f"({data}) || CASE WHEN sandbox THEN jsonb_build_object('sandbox', true) ELSE '{{}}'::jsonb END"
    else:
        data = f"json_patch({data}, CASE WHEN sandbox THEN json_object('sandbox', json('true')) ELSE '{{}}' END)"
    sql = (
        f"SELECT workspace_id, CASE status {cases} END, COALESCE(sent_at, %s), email, message_id, id, "
        "campaign_id, run_id, "
        f"{data} "
        f"FROM {source} WHERE status <> 'sending'"
    )
    return sql, [_dt(occurred_at)]


def update_with_events(
    *,
    set_sql: str,
    set_params: list,
    where_sql: str,
    where_params: list,
    flags: tuple[str, ...] = (),
    from_sql: str = "",
    from_params: tuple = (),
) -> list:
    """UPDATE deliveries and write one event per changed row, atomically. Returns [(id, status)].
    `from_sql` (PostgreSQL only) joins a row source, e.g. unnest() of per-row values."""
    now = timezone.now()
    returning = "id, status, workspace_id, email, message_id, run_id, campaign_id, error, send_at, sent_at, sandbox"
    joined = f" FROM {from_sql}" if from_sql else ""
    update = f"UPDATE {_TABLE} SET {set_sql}{joined} WHERE {where_sql} RETURNING {returning}"
    with transaction.atomic(), connection.cursor() as cursor:
        if _is_postgres():
            select, select_params = _event_select(source="changed", occurred_at=now, flags=flags)
            cursor.execute(
                f"WITH changed AS ({update}), ev AS (INSERT INTO {_EVENT_TABLE} ({_EVENT_COLUMNS}) {select}) "
                "SELECT id, status, send_at, sent_at FROM changed",
                [*set_params, *from_params, *where_params, *select_params],
            )
            rows = cursor.fetchall()
        else:
            cursor.execute(update, [*set_params, *where_params])
            rows = [(row[0], row[1], row[8], row[9]) for row in cursor.fetchall()]
            if rows:
                ids = [row[0] for row in rows]
                select, select_params = _event_select(source=_TABLE, occurred_at=now, flags=flags)
                cursor.execute(
                    f"INSERT INTO {_EVENT_TABLE} ({_EVENT_COLUMNS}) {select} AND id IN ({_placeholders(len(ids))})",
                    [*select_params, *ids],
                )
    # Counted once the statement ran; a rollback of an outer transaction can still undo it (rare: the send
    # path commits each mark on its own), which overcounts a metric and changes nothing stored.
    delivery_metrics.deliveries_marked(rows)
    return [(row[0], row[1]) for row in rows]


def delivery_send_batch(*, delivery_ids: list[int], throttle: SendThrottle | None = None) -> BatchResult:
    """Send the given deliveries once each (see the module docstring). Safe to run twice, concurrently,
    or after a crash: rows already claimed, sent or ended are not touched."""
    return _Batch(delivery_ids=delivery_ids, throttle=throttle).run()


class _Builder:
    """Builds each row's message: the run's content and MIME blueprint once per run, then per recipient
    only what differs."""

    def __init__(self, contents: dict):
        self.contents = contents
        self.blueprints: dict = {}
        # A run whose message ran out of its render budget (docs/decisions/018) would spend it again for each
        # of its rows: the rest of them in this batch fail with the same reason, unrendered.
        self.spent: dict = {}

    def compose(self, row: Delivery) -> sending.OutgoingMessage:
        """Raises TemplateRenderError or HeaderInjection."""
        if row.run_id in self.spent:
            raise self.spent[row.run_id]
        if row.contact is not None:
            row.contact.workspace = row.workspace  # contact_context reads it; same workspace
        content = self.contents.get(row.run_id)
        if content is None:
            raise TemplateRenderError("The run's message is gone.")
        if not content.from_email:
            raise TemplateRenderError("The campaign has no from_email.")
        if row.run_id not in self.blueprints:
            try:
                self.blueprints[row.run_id] = sending.blueprint_for(content)
            except HeaderInjection as exc:  # a sender stored before the rule: every row fails
                self.blueprints[row.run_id] = exc
        blueprint = self.blueprints[row.run_id]
        if isinstance(blueprint, HeaderInjection):
            raise blueprint
        try:
            return sending.compose(
                content=content, blueprint=blueprint, delivery_id=row.id, to_email=row.email, contact=row.contact
            )
        except TemplateBudgetExceeded as exc:
            self.spent[row.run_id] = exc
            raise


class LeaseLost(Exception):
    """This batch's claim was taken over (the reaper gave its rows back): it must not hand over another message."""


@dataclass
class _Prepared:
    """One message ready to go: the seams of the send loop are build (bytes) -> transform -> hand off ->
    record the outcome. `raw` is None when the transport takes a Django EmailMessage instead of bytes."""

    row: Delivery
    message: sending.OutgoingMessage
    raw: bytes | None


class _Batch:
    def __init__(self, *, delivery_ids: list[int], throttle: SendThrottle | None):
        self.ids = sorted({int(i) for i in delivery_ids})
        self.throttle = throttle if throttle is not None else SendThrottle()
        self.result = BatchResult()
        self.now = timezone.now()
        # The lease doubles as this claim's fencing token, so it must be unique to this call: the
        # microseconds of `now` plus the lease length make a collision of two calls practically impossible,
        # and a collision would still only let two calls share rows neither could double-mark (status guards).
        self.lease_seconds = float(delivery_setting("DELIVERY_LEASE_SECONDS"))
        self.lease = self.now + timedelta(seconds=self.lease_seconds)
        # Renewed once half of it is gone: a hand-off cannot take longer than EMAIL_TIMEOUT (30 s), so a
        # live batch renews before its lease runs out however long the whole batch takes.
        self.renew_at = self.now + timedelta(seconds=self.lease_seconds / 2)
        self.mark_every = max(1, int(delivery_setting("DELIVERY_MARK_EVERY")))
        self.pending: list[_Outcome] = []
        self.run_counts: dict = defaultdict(Counter)
        self.progress = False

    # --- claim and load -------------------------------------------------------------------------------

    def run(self) -> BatchResult:
        if not self.ids:
            return self.result
        claimed = self._claim()
        self.result.claimed = len(claimed)
        if len(claimed) < len(self.ids):
            self._cancel_stopped([i for i in self.ids if i not in claimed])
        if not claimed:
            return self.result
        rows = list(
            Delivery.objects.filter(id__in=claimed, lease_until=self.lease).select_related("contact").order_by("id")
        )
        # The batch's few workspaces once each, not joined to and built for every row.
        workspaces = Workspace.objects.in_bulk({row.workspace_id for row in rows})
        for row in rows:
            row.workspace = workspaces[row.workspace_id]
        relaxed = self._relax_commit_durability()
        finished = False
        try:
            sendable = self._apply_policies(self._skip_suppressed(rows))
            if sendable:
                self._send_all(sendable)
            finished = True
        finally:
            self._flush()
            # After an exception the progress row stays: rows may still be `sending`, and only it tells the
            # reaper which of them went out.
            if finished:
                self._progress_end()
            if relaxed:
                with connection.cursor() as cursor:
                    cursor.execute("RESET synchronous_commit")
            self._report({row.run_id for row in rows})
        return self.result

    def _relax_commit_durability(self) -> bool:
        """Unless DELIVERY_DURABLE_MARKS, the marks commit without waiting for the WAL flush
        (docs/decisions/010): about half the send time otherwise. A killed worker loses nothing by it (the
        marks are in PostgreSQL the moment they commit); only a crash of PostgreSQL itself can forget the
        last fraction of a second of marks, whose messages may then be sent again."""
        if not _is_postgres() or settings.DELIVERY_DURABLE_MARKS:
            return False
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO OFF")
        return True

    def _claim(self) -> set[int]:
        horizon = self.now + timedelta(seconds=delivery_setting("DELIVERY_CLAIM_TOLERANCE_SECONDS"))
        # Conditions on the target row itself (status, lease) are re-checked by PostgreSQL after waiting
        # for a concurrent claim's row lock, so two claims of one row cannot both win. The run's owner says
        # which runs may send (a paused one: rows stay queued untouched), inside this same statement.
        runs_sql, runs_params = _subquery(run_source().claimable_run_ids())
        sql = f"""
            UPDATE {_TABLE} SET lease_until = %s
            WHERE id IN ({_placeholders(len(self.ids))})
              AND status = %s AND send_at <= %s AND (lease_until IS NULL OR lease_until < %s)
              AND run_id IN ({runs_sql})
            RETURNING id"""
        params = [_dt(self.lease), *self.ids, S.QUEUED, _dt(horizon), _dt(self.now), *runs_params]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}

    def _cancel_stopped(self, ids: list[int]) -> None:
        """Rows of a stopped campaign or run end as `cancelled` (remaining recipients are not sent); rows
        of a paused one stay queued untouched."""
        runs_sql, runs_params = _subquery(run_source().stopped_run_ids())
        changed = update_with_events(
            set_sql="status = %s, error = %s, lease_until = NULL",
            set_params=[S.CANCELLED, "campaign cancelled"],
            where_sql=(
                f"id IN ({_placeholders(len(ids))}) AND status = %s AND (lease_until IS NULL OR lease_until < %s) "
                f"AND run_id IN ({runs_sql})"
            ),
            where_params=[*ids, S.QUEUED, _dt(self.now), *runs_params],
        )
        self.result.cancelled = len(changed)

    def _skip_suppressed(self, rows: list[Delivery]) -> list[Delivery]:
        """Check again at send time: the contact may have unsubscribed or bounced since the fan-out. The
        contacts came with the rows; the suppression list is one query for the batch."""
        wanted = {(row.workspace_id, normalize_email(row.email)) for row in rows}
        suppressed = dict(
            ((ws, email), reason)
            for ws, email, reason in Suppression.objects.filter(
                workspace_id__in={ws for ws, _ in wanted}, email__in={email for _, email in wanted}
            ).values_list("workspace_id", "email", "reason")
        )
        sendable = []
        for row in rows:
            reason = None
            if row.contact is None:
                reason = "contact deleted"
            elif row.contact.status != Contact.Status.SUBSCRIBED:
                reason = f"contact {row.contact.status}"
            elif (row.workspace_id, normalize_email(row.email)) in suppressed:
                reason = f"suppression list ({suppressed[(row.workspace_id, normalize_email(row.email))]})"
            if reason is None:
                sendable.append(row)
                continue
            self.pending.append(_Outcome(row.id, S.QUEUED, S.SKIPPED, error=f"suppressed: {reason}"))
            self._count(row, "skipped")
        return sendable

    def _apply_policies(self, rows: list[Delivery]) -> list[Delivery]:
        """The run's scheduling policies at send time (docs/decisions/060), on the claimed rows: a row later
        than max_lateness_minutes past its send time (a long worker outage, a queue paused for hours) is
        cancelled as missed; a row whose recipient is inside the quiet hours now (a resume at night) is held
        until they end. Returns the rows that may go now."""
        if not rows:
            return rows
        policies = run_source().policies({row.run_id for row in rows})
        if not policies:
            return rows
        now = timezone.now()
        go: list[Delivery] = []
        held: dict[datetime, list[Delivery]] = defaultdict(list)
        for row in rows:
            policy = policies.get(row.run_id)
            if policy is None:
                go.append(row)
                continue
            lateness = policy.max_lateness_minutes
            if lateness is not None and now - row.send_at > timedelta(minutes=lateness):
                late = int((now - row.send_at).total_seconds() // 60)
                error = f"missed: {late} minutes after its send time (max_lateness_minutes is {lateness})"
                self._end(row, S.QUEUED, S.CANCELLED, error=error, counter="cancelled")
                continue
            zone = row.contact.timezone if row.contact is not None else ""
            zone = zone if zone and is_valid_timezone(zone) else row.workspace.timezone
            release = quiet_hours_release(quiet=policy.quiet_hours, instant=now, zone_name=zone)
            if release is not None:
                held[release].append(row)
                continue
            go.append(row)
        for release, group in held.items():
            self._defer(group, delay=0, until=release, error="held: quiet hours")
        return go

    # --- the send loop --------------------------------------------------------------------------------

    def _send_all(self, rows: list[Delivery]) -> None:
        """A chunk of DELIVERY_MARK_EVERY messages at a time: build them, mark them `sending` in one
        statement (with the previous chunk's outcomes and their events), then per message only move the
        progress row and hand it over. The database is out of the per-message loop but for that one
        HOT update; what a crash leaves is settled from the progress row (SendProgress). Sandbox rows are
        built to the last byte and dropped (docs/decisions/061)."""
        builder = _Builder(run_source().contents({row.run_id for row in rows}))
        # A batch of sandbox rows only never opens a connection: nothing of theirs reaches a mail server.
        transport = Transport() if any(not row.sandbox for row in rows) else None
        try:
            if transport is not None:
                transport.open()
        except SendError as exc:
            logger.warning("Mail server unreachable, %d deliveries requeued: %s", len(rows), exc)
            self._defer(rows, delay=delivery_setting("DELIVERY_CONNECT_RETRY_SECONDS"), error=str(exc))
            return
        try:
            self.throttle.prefetch_backoff({domain_of(row.email) for row in rows if not row.sandbox})
            self._progress_start()
            held: set[int] = set()  # rows given back for a throttle wait
            for start in range(0, len(rows), self.mark_every):
                chunk = [row for row in rows[start : start + self.mark_every] if row.id not in held]
                built = (self._build(builder, transport, row) for row in chunk)
                ready = self._mark_sending([p for p in built if p is not None])
                for index, prepared in enumerate(ready):
                    row = prepared.row
                    if row.id in held:
                        continue
                    wait = (
                        0.0
                        if row.sandbox
                        else self._admit(row, sending_domain=domain_of(prepared.message.content.from_email))
                    )
                    if wait:
                        # Only the rest of this recipient domain waits: a throttled domain (or a deferring one,
                        # docs/decisions/062) must not hold back the other domains of the batch. A workspace-wide
                        # limit makes every domain wait in turn, one deferral per domain.
                        domain = domain_of(row.email)
                        later = [p.row for p in ready[index:]] + rows[start + self.mark_every :]
                        waiting = [r for r in later if r.id not in held and domain_of(r.email) == domain]
                        self._defer(waiting, delay=wait, error="")
                        held.update(r.id for r in waiting)
                        continue
                    move = self._advance(row.id, overlap=not row.sandbox and transport.raw_capable)
                    self._send_one(transport, prepared, move)
        except LeaseLost:
            logger.warning("Batch lost its lease (its rows were given back by the reaper); it stops here")
        finally:
            if transport is not None:
                transport.close()

    def _build(self, builder: "_Builder", transport: Transport | None, row: Delivery) -> _Prepared | None:
        """The message and, for the SMTP transport, its bytes; a failure is this row's outcome (failed)."""
        try:
            message = builder.compose(row)
        except TemplateRenderError as exc:
            self._end(row, S.QUEUED, S.FAILED, error=f"render: {exc.message}")
            return None
        except HeaderInjection as exc:
            self._end(row, S.QUEUED, S.FAILED, error=f"refused: {exc}")
            return None
        if row.sandbox:
            sending.dry_run(message)
            raw = None
        else:
            raw = sending.message_bytes(message) if transport.raw_capable else None
        return _Prepared(row=row, message=message, raw=raw)

    def _admit(self, row: Delivery, *, sending_domain: str = "") -> float:
        """0 when the throttle lets this message go now, else how long to requeue the rest for. Short
        waits are slept (the exact time until a token, no polling); outcomes are written first, so
        nothing sits unrecorded during the sleep."""
        budget = float(delivery_setting("DELIVERY_THROTTLE_MAX_WAIT_SECONDS"))
        while True:
            wait = self.throttle.acquire(workspace_id=row.workspace_id, email=row.email, sending_domain=sending_domain)
            if wait <= 0:
                return 0.0
            if wait > budget:
                return wait
            self._flush()
            time.sleep(wait)
            budget -= wait

    def _mark_sending(self, chunk: list[_Prepared]) -> list[_Prepared]:
        """One statement: the outcomes so far and this chunk `sending` (with its message ids, so a crash's
        settlement can write them). Returns what was marked: not marked means our lease was lost."""
        if not chunk:
            return []
        outcomes = [
            _Outcome(p.row.id, S.QUEUED, S.SENDING, attempt=1, keep_lease=True, message_id=p.message.message_id)
            for p in chunk
        ]
        marked = self._write([*self.pending, *outcomes])
        self.pending = []
        return [p for p in chunk if marked.get(p.row.id) == S.SENDING]

    def _advance(self, delivery_id: int, *, overlap: bool = False) -> "_ProgressMove":
        """Record that `delivery_id` is the one being handed over now (and so that every earlier one of
        this claim went out): a one-row HOT update. With `overlap` (an SMTP hand-off on PostgreSQL) the
        UPDATE is only sent here and its answer read by the returned move's `confirm`, which the hand-off
        calls before the message itself goes (docs/decisions/101); otherwise it is answered here. Raises
        LeaseLost (here or from `confirm`) when the reaper has taken the claim."""
        now = timezone.now()
        if now >= self.renew_at:
            self._renew(now)
        if overlap and _is_postgres():
            return _ProgressMove(position=delivery_id, moved_at=now, lease=self.lease)
        sql = f"UPDATE {_PROGRESS_TABLE} SET position = %s, moved_at = %s WHERE lease_until = %s"
        params = [delivery_id, _dt(now), _dt(self.lease)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if cursor.rowcount != 1:
                raise LeaseLost()
        return _ProgressMove.answered()

    def _renew(self, now: datetime) -> None:
        """Extend the claim: the progress row first (gone means the reaper took the claim), then every row
        still under it. The lease is the fencing token, so both move to the new value together."""
        lease = now + timedelta(seconds=self.lease_seconds)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_PROGRESS_TABLE} SET lease_until = %s WHERE lease_until = %s", [_dt(lease), _dt(self.lease)]
            )
            if cursor.rowcount != 1:
                raise LeaseLost()
            ours = f"id IN ({_placeholders(len(self.ids))}) AND lease_until = %s"
            params = [_dt(lease), *self.ids, _dt(self.lease)]
            cursor.execute(f"UPDATE {_TABLE} SET lease_until = %s WHERE {ours}", params)
        self.lease = lease
        self.renew_at = now + timedelta(seconds=self.lease_seconds / 2)

    def _progress_start(self) -> None:
        SendProgress.objects.create(lease_until=self.lease)
        self.progress = True

    def _progress_end(self) -> None:
        if self.progress:
            SendProgress.objects.filter(lease_until=self.lease).delete()

    def _send_one(self, transport: Transport | None, prepared: _Prepared, move: "_ProgressMove") -> None:
        row, message = prepared.row, prepared.message
        attempts = row.attempts + 1
        try:
            if not row.sandbox:
                sending.hand_off(transport, message, raw=prepared.raw, before_body=move.confirm)
            move.confirm()
        except SendError as exc:
            # Refused before the message went (MAIL, RCPT, DATA) or after it: either way the progress row's
            # answer comes first, so a batch that lost its lease writes no outcome.
            move.confirm()
            if exc.permanent and exc.recipient_fault:
                self._end(row, S.SENDING, S.BOUNCED, error=str(exc), counter="bounced")
                contact_suppress(
                    workspace_id=row.workspace_id,
                    email=row.email,
                    reason=Suppression.Reason.BOUNCED,
                    contact_id=row.contact_id,
                )
            elif exc.permanent or attempts >= delivery_setting("DELIVERY_MAX_ATTEMPTS"):
                self._end(row, S.SENDING, S.FAILED, error=str(exc))
            else:
                if not isinstance(exc, ConnectionLost):
                    # A 4xx answer: the receiving domain asks us to slow down (docs/decisions/062).
                    self.throttle.record_deferral(email=row.email)
                self.pending.append(
                    _Outcome(
                        row.id,
                        S.SENDING,
                        S.QUEUED,
                        error=str(exc)[:500],
                        send_at=timezone.now() + retry_delay(attempts),
                    )
                )
                self.result.retrying += 1
            # Written at once: the settlement after a crash takes every `sending` row below the progress
            # position for sent, so a refused one must not stay `sending`.
            self._flush()
            return
        finally:
            move.finish()
        self.pending.append(
            _Outcome(row.id, S.SENDING, S.SENT, sent_at=timezone.now(), message_id=message.message_id, error="")
        )
        self._count(row, "sent")

    def _end(self, row: Delivery, from_status: str, status: str, *, error: str, counter: str = "failed") -> None:
        self.pending.append(_Outcome(row.id, from_status, status, error=error[:500]))
        self._count(row, counter)

    def _count(self, row: Delivery, counter: str) -> None:
        setattr(self.result, counter, getattr(self.result, counter) + 1)
        self.run_counts[row.run_id]["failed" if counter == "bounced" else counter] += 1

    def _defer(self, rows: list[Delivery], *, delay: float, error: str, until: datetime | None = None) -> None:
        """Give claimed, never attempted rows back (queued ones, and `sending` ones of the current chunk
        not yet handed over): queued, unleased, due again after `delay` (or at `until`). Not an event:
        nothing was attempted (a throttle wait, an unreachable server or quiet hours are ours, not the
        message's)."""
        self._flush()
        send_at = until or timezone.now() + timedelta(seconds=delay)
        ids = [row.id for row in rows]
        sql = f"""UPDATE {_TABLE} SET status = %s, lease_until = NULL, enqueued_at = NULL, send_at = %s, error = %s,
                      attempts = CASE WHEN status = %s THEN attempts - 1 ELSE attempts END,
                      message_id = CASE WHEN status = %s THEN '' ELSE message_id END
                  WHERE id IN ({_placeholders(len(ids))}) AND status IN (%s, %s) AND {_lease_match()}"""
        params = [S.QUEUED, _dt(send_at), error[:500], S.SENDING, S.SENDING, *ids, S.QUEUED, S.SENDING, _dt(self.lease)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            self.result.deferred += cursor.rowcount

    # --- writes ---------------------------------------------------------------------------------------

    def _flush(self) -> None:
        if self.pending:
            self._write(self.pending)
            self.pending = []

    def _write(self, outcomes: list[_Outcome]) -> dict[int, str]:
        """One UPDATE for any number of rows (a chunk's outcomes and the next chunk's `sending`), with the
        events of the outcomes in the same statement. Each row changes only from the
        status we expect and under our lease. Returns {id: new status} of the rows it changed."""
        rows = self._write_arrays(outcomes) if _is_postgres() else self._write_cases(outcomes)
        changed = dict(rows)
        if len(changed) < len(outcomes):
            lost = [o.id for o in outcomes if o.id not in changed]
            logger.warning("Deliveries %s changed under this batch (lease lost?); left as they are", lost)
        return changed

    def _write_arrays(self, outcomes: list[_Outcome]) -> list:
        """PostgreSQL: the per-row values travel as one array per column, joined by unnest(), so the
        statement has a dozen parameters whatever the chunk size. The CASE form below is quadratic (each row
        walks every WHEN) and makes psycopg split and quote thousands of placeholders per chunk, which was a
        fifth of the send path (docs/decisions/102). NULL in an array keeps the column as it is."""
        first: dict[int, _Outcome] = {}
        for o in outcomes:
            first.setdefault(o.id, o)  # as the CASE form: the first outcome of a row wins
        chosen = list(first.values())
        columns = (
            ("v_id", "bigint", [o.id for o in chosen]),
            ("v_from", "text", [o.from_status for o in chosen]),
            ("v_status", "text", [o.status for o in chosen]),
            ("v_sent_at", "timestamptz", [o.sent_at for o in chosen]),
            ("v_message_id", "text", [o.message_id for o in chosen]),
            ("v_error", "text", [o.error for o in chosen]),
            ("v_send_at", "timestamptz", [o.send_at for o in chosen]),
            ("v_bump", "integer", [1 if o.attempt else 0 for o in chosen]),
            ("v_requeue", "boolean", [o.status == S.QUEUED for o in chosen]),
            ("v_release", "boolean", [not o.keep_lease for o in chosen]),
        )
        unnest = ", ".join(f"%s::{kind}[]" for _, kind, _ in columns)
        names = ", ".join(name for name, _, _ in columns)
        return update_with_events(
            set_sql=(
                "status = v.v_status, sent_at = COALESCE(v.v_sent_at, sent_at), "
                "message_id = COALESCE(v.v_message_id, message_id), error = COALESCE(v.v_error, error), "
                "send_at = COALESCE(v.v_send_at, send_at), attempts = attempts + v.v_bump, "
                "enqueued_at = CASE WHEN v.v_requeue THEN NULL ELSE enqueued_at END, "
                "lease_until = CASE WHEN v.v_release THEN NULL ELSE lease_until END"
            ),
            set_params=[],
            from_sql=f"unnest({unnest}) AS v({names})",
            from_params=[values for _, _, values in columns],
            where_sql=f"id = v.v_id AND status = v.v_from AND {_lease_match()}",
            where_params=[_dt(self.lease)],
        )

    def _write_cases(self, outcomes: list[_Outcome]) -> list:
        """SQLite: one CASE per column (its UPDATE ... FROM would do, but its batches are small)."""
        sets: list[str] = []
        params: list = []

        def column(name: str, attr: str, *, wrap=lambda v: v) -> None:
            chosen = [o for o in outcomes if getattr(o, attr) is not None]
            if not chosen:
                return
            cases = " ".join("WHEN %s THEN %s" for _ in chosen)
            for o in chosen:
                params.extend([o.id, wrap(getattr(o, attr))])
            sets.append(f"{name} = CASE id {cases} ELSE {name} END")

        column("status", "status")
        column("sent_at", "sent_at", wrap=_dt)
        column("message_id", "message_id")
        column("error", "error")
        column("send_at", "send_at", wrap=_dt)
        bumped = [o.id for o in outcomes if o.attempt]
        if bumped:
            sets.append(f"attempts = attempts + CASE WHEN id IN ({_placeholders(len(bumped))}) THEN 1 ELSE 0 END")
            params.extend(bumped)
        # A row given back to the queue (4xx retry) must be enqueued again by the dispatcher when due.
        requeued = [o.id for o in outcomes if o.status == S.QUEUED]
        if requeued:
            sets.append(
                f"enqueued_at = CASE WHEN id IN ({_placeholders(len(requeued))}) THEN NULL ELSE enqueued_at END"
            )
            params.extend(requeued)
        released = [o.id for o in outcomes if not o.keep_lease]
        if released:
            sets.append(
                f"lease_until = CASE WHEN id IN ({_placeholders(len(released))}) THEN NULL ELSE lease_until END"
            )
            params.extend(released)
        by_status: dict[str, list[int]] = defaultdict(list)
        for o in outcomes:
            by_status[o.from_status].append(o.id)
        where = " OR ".join(f"(status = %s AND id IN ({_placeholders(len(ids))}))" for ids in by_status.values())
        where_params: list = [o.id for o in outcomes]
        for from_status, ids in by_status.items():
            where_params.extend([from_status, *ids])
        where_params.append(_dt(self.lease))
        # The outcomes' events are written by the same statement (update_with_events): exact under SIGKILL and
        # under concurrent batches of one run. A buffered variant was faster but raced the end-of-run
        # reconciliation into duplicate events (docs/decisions/015).
        return update_with_events(
            set_sql=", ".join(sets),
            set_params=params,
            where_sql=f"id IN ({_placeholders(len(outcomes))}) AND ({where}) AND {_lease_match()}",
            where_params=where_params,
        )

    def _report(self, run_ids: set) -> None:
        for run_id, counts in self.run_counts.items():
            if counts:
                signals.deliveries_counted.send(sender=Delivery, run_id=run_id, counts=dict(counts))
        for run_id in run_ids:
            delivery_run_check_final(run_id=run_id)


_QUIET = (psycopg.pq.TransactionStatus.IDLE, psycopg.pq.TransactionStatus.INTRANS)


class _ProgressMove:
    """The progress row's UPDATE on its way: sent before the SMTP exchange, answered by `confirm` just before
    the message itself goes, so the database round trip overlaps the SMTP one (docs/decisions/101).
    `confirm` raises LeaseLost when the row was not moved.

    It talks to libpq directly (psycopg's `pq` layer): a statement prepared once per connection, sent with
    PQsendQueryPrepared and its one result read with PQgetResult. psycopg's pipeline mode did the same
    through a context manager, a cursor and its generators, which was a sixth of a bulk worker's time for
    one tiny statement a message (docs/decisions/102). No other statement is on the connection before or
    after (the send loop runs in autocommit; tests wrap it in a transaction, which works the same), so
    psycopg and Django never see it."""

    _NAME = b"mailsched_progress_move"
    _SQL = f"UPDATE {_PROGRESS_TABLE} SET position = $1, moved_at = $2 WHERE lease_until = $3".encode()
    _prepared = threading.local()  # .on: the libpq connection this thread prepared the statement on

    def __init__(self, *, position: int, moved_at: datetime, lease: datetime):
        self._pgconn: Any = None
        self._answered = False
        connection.ensure_connection()
        pgconn = connection.connection.pgconn
        if pgconn.transaction_status not in _QUIET:
            raise RuntimeError("the progress row cannot move while a statement is running")  # a programming error
        try:
            with connection.wrap_database_errors:
                if getattr(self._prepared, "on", None) is not pgconn:
                    self._check(pgconn.prepare(self._NAME, self._SQL))
                    self._prepared.on = pgconn
                params = [str(position).encode(), moved_at.isoformat().encode(), lease.isoformat().encode()]
                pgconn.send_query_prepared(self._NAME, params)
                self._pgconn = pgconn
                while pgconn.flush():  # nonblocking connection (psycopg sets it): the rest once writable
                    select.select([], [pgconn.socket], [])
        except BaseException:
            self._drop()
            raise

    @classmethod
    def answered(cls) -> "_ProgressMove":
        move = cls.__new__(cls)
        move._pgconn, move._answered = None, True
        return move

    def confirm(self) -> None:
        if self._answered:
            return
        rowcount = self._end()
        self._answered = True
        if rowcount != 1:
            raise LeaseLost()

    def finish(self) -> None:
        """Read the answer without judging it (an exception is on its way); a no-op once confirmed."""
        if self._pgconn is not None:
            self._end()
            self._answered = True

    def _end(self) -> int:
        pgconn, self._pgconn = self._pgconn, None
        if pgconn is None:
            return -1
        try:
            with connection.wrap_database_errors:
                while True:  # wait in Python, so a task's time limit can still interrupt it
                    pgconn.consume_input()
                    if not pgconn.is_busy():
                        break
                    select.select([pgconn.socket], [], [])
                result = pgconn.get_result()
                while pgconn.get_result() is not None:  # the end of this query's results
                    pass
                self._check(result)
                # In autocommit the UPDATE has committed once its answer is here.
                return int(result.command_tuples or 0)
        except BaseException:
            self._drop()
            raise

    @staticmethod
    def _check(result) -> None:
        if result is None or result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            message = result.error_message.decode(errors="replace") if result is not None else "no result"
            raise psycopg.OperationalError(f"progress row update failed: {message}")

    def _drop(self) -> None:
        # Interrupted (a task time limit) or failed half-way: the connection's state is unknown, so it is
        # dropped and the batch's next statement opens a fresh one.
        self._pgconn = None
        self._prepared.on = None
        connection.close()


@dataclass
class Settlement:
    sent: int = 0  # `sending` below the dead batch's progress position: they went out
    requeued: int = 0  # `sending` above it: never handed over, queued again unflagged
    run_ids: set = field(default_factory=set)


def deliveries_settle_dead_claims(*, now: datetime) -> Settlement:
    """Settle the `sending` rows of batches whose lease ran out (their worker died) from each one's progress
    row (SendProgress): below the position they went out (`sent`, with their event; sent at the moment the
    position last moved, the latest they can have been accepted), above it they were never attempted (back
    to the queue as they were). The row at the position, the one in flight, is left `sending` for the
    reaper's policy. Deleting the progress row first takes it from under a batch that is still alive after
    all: its next move finds the row gone and it stops before another hand-off."""
    result = Settlement()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {_PROGRESS_TABLE} WHERE lease_until < %s RETURNING lease_until, position, moved_at",
                [_dt(now)],
            )
            claims = cursor.fetchall()
        for lease, position, moved_at in claims:
            lease = _dt(lease) if isinstance(lease, datetime) else lease
            if position is not None:
                sent = update_with_events(
                    set_sql="status = %s, sent_at = %s, lease_until = NULL, error = ''",
                    set_params=[S.SENT, _dt(moved_at) if isinstance(moved_at, datetime) else moved_at],
                    where_sql="status = %s AND lease_until = %s AND id < %s",
                    where_params=[S.SENDING, lease, position],
                )
                result.sent += len(sent)
                result.run_ids.update(
                    Delivery.objects.filter(pk__in=[pk for pk, _ in sent]).values_list("run_id", flat=True).distinct()
                )
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""UPDATE {_TABLE} SET status = %s, attempts = attempts - 1, message_id = '', lease_until = NULL,
                            enqueued_at = NULL
                        WHERE status = %s AND lease_until = %s AND id > %s RETURNING run_id""",
                    [S.QUEUED, S.SENDING, lease, -1 if position is None else position],
                )
                result.requeued += cursor.rowcount
                result.run_ids.update(UUID(str(row[0])) for row in cursor.fetchall())
    return result


def delivery_run_check_final(*, run_id: UUID) -> bool:
    """Tell the run's owner (run_deliveries_final) when the run has nothing queued or in flight. Returns
    whether it was final."""
    if Delivery.objects.filter(run_id=run_id, status__in=[S.QUEUED, S.SENDING]).exists():
        return False
    signals.run_deliveries_final.send(sender=Delivery, run_id=run_id)
    return True


def deliveries_cancel(*, run_id: UUID, reason: str) -> int:
    """End every still-queued delivery of a run as `cancelled` (a stopped campaign), with its event. Rows in
    flight finish as they are. Returns how many were cancelled."""
    return len(
        update_with_events(
            set_sql="status = %s, error = %s, lease_until = NULL",
            set_params=[S.CANCELLED, reason[:500]],
            where_sql="run_id = %s AND status = %s",
            where_params=[_run_param(run_id), S.QUEUED],
        )
    )


def deliveries_requeue(*, run_id: UUID) -> int:
    """Make a run's queued deliveries due for the dispatcher again (after a resume: the tasks enqueued
    before the pause ran, found the run paused and left the rows)."""
    return Delivery.objects.filter(run_id=run_id, status=S.QUEUED, enqueued_at__isnull=False).update(enqueued_at=None)


def _run_param(run_id):
    field = Delivery._meta.get_field("run").target_field
    return field.get_db_prep_value(run_id if isinstance(run_id, UUID) else UUID(str(run_id)), connection)


# --- fan-out writes (the run's owner resolves the audience and plans the times) ---------------------------


class DeliveryWriter:
    """Inserts Delivery rows, skipping (run, contact) pairs that exist. PostgreSQL: COPY into a temporary
    table, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING (COPY alone cannot skip conflicts).
    Elsewhere: bulk_create(ignore_conflicts=True)."""

    VARYING = ("contact_id", "email", "send_at", "send_reason_code", "send_reason")

    def __init__(self, *, workspace_id: UUID, run_id: UUID, campaign_id: UUID, sandbox: bool = False):
        self.workspace_id, self.run_id, self.campaign_id = workspace_id, run_id, campaign_id
        self.sandbox = sandbox
        # A run with no rows yet (the usual first attempt, under the fan-out's per-run lock) can COPY
        # straight into the table; a re-run after a crash must skip the rows the first attempt wrote.
        self.fresh = not Delivery.objects.filter(run_id=run_id).exists()
        self.written = 0
        self._staging = False
        self._staged_reasons: set[int] = set()
        fixed = {
            "workspace_id": workspace_id,
            "run_id": run_id,
            "campaign_id": campaign_id,
            "status": S.QUEUED,
            "sandbox": sandbox,
        }
        # Every other column gets its model default, so a field added to Delivery later needs no change here.
        self.fields = [f for f in Delivery._meta.concrete_fields if not f.primary_key]
        self.columns = [f.column for f in self.fields]
        self.template: list = []
        self.slots: list[int] = []
        for index, f in enumerate(self.fields):
            if f.attname in self.VARYING:
                self.template.append(None)
                self.slots.append(index)
            else:
                value = fixed[f.attname] if f.attname in fixed else f.get_default()
                self.template.append(f.get_db_prep_save(value, connection))
        order = {f.attname: i for i, f in enumerate(self.fields)}
        self.positions = [order[name] for name in self.VARYING]

    def write(self, chunk: list[tuple]) -> None:
        if _is_postgres():
            self._copy(chunk)
        else:
            self._bulk_create(chunk)

    def _copy(self, chunk: list[tuple]) -> None:
        table = Delivery._meta.db_table
        cols = ", ".join(connection.ops.quote_name(c) for c in self.columns)
        with transaction.atomic(), connection.cursor() as cursor:
            # Each chunk's commit need not wait for its WAL flush: a crash loses at most the last chunks,
            # which the re-run writes again, and the run's final (synchronous) commit flushes them all.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            target = table if self.fresh else "_fan_out_stage"
            if not self.fresh:
                cursor.execute(
                    f"CREATE TEMPORARY TABLE _fan_out_stage ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
                )
            with cursor.cursor.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
                row = list(self.template)
                p_contact, p_email, p_send_at, p_code, p_reason = self.positions
                for contact_id, email, send_at, code, reason in chunk:
                    row[p_contact] = contact_id
                    row[p_email] = email
                    row[p_send_at] = send_at
                    row[p_code] = code
                    row[p_reason] = reason
                    copy.write_row(row)
            if self.fresh:
                self.written += len(chunk)
                return
            cursor.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _fan_out_stage ON CONFLICT DO NOTHING")
            self.written += cursor.rowcount
            cursor.execute("DROP TABLE _fan_out_stage")

    def stage_plan(self, plan) -> None:
        """Keep a planned chunk given as columns (the STO fan-out's campaigns.planning.ChunkPlan: per
        recipient the contact id, 16 bytes each in `ids`, the send time in epoch seconds, an index into
        `reasons` and the history counts) in a temporary table of the caller's transaction, for
        `insert_staged`. A reason has `code`, `head`, `history` and `tail`; its text is head, then
        "N opens[, M clicks]" when `history`, then tail, cut to 200 characters (campaigns.planning.Reason.text,
        which the preview uses).

        The columns go in one binary COPY whose bytes numpy builds, so no Python runs per recipient.
        PostgreSQL only: elsewhere the fan-out hands `write` its rows."""
        if not len(plan):
            return
        with connection.cursor() as cursor:
            if not self._staging:
                # UNLOGGED in effect (temporary): the plans are rebuilt by a re-run, never recovered.
                cursor.execute(
                    "CREATE TEMPORARY TABLE _fan_out_plan (contact_id uuid, send_at timestamptz, reason int4, "
                    "opens int4, clicks int4) ON COMMIT DROP"
                )
                cursor.execute(
                    "CREATE TEMPORARY TABLE _fan_out_reasons (k int4 PRIMARY KEY, code text, head text, "
                    "history bool, tail text) ON COMMIT DROP"
                )
                self._staging, self._staged_reasons = True, set()
            with cursor.cursor.copy("COPY _fan_out_plan FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(_plan_copy_bytes(plan.ids, plan.send_at, plan.reason, plan.opens, plan.clicks))
            new = [k for k in np.unique(plan.reason).tolist() if k not in self._staged_reasons]
            if new:
                with cursor.cursor.copy("COPY _fan_out_reasons FROM STDIN") as copy:
                    for k in new:
                        r = plan.reasons[k]
                        copy.write_row((k, r.code, r.head, r.history, r.tail))
                self._staged_reasons.update(new)

    def insert_staged(self) -> None:
        """Write every staged plan to the delivery table in one statement, in contact order.

        In contact order because two of the table's indexes lead with the contact (the contact's own, and
        the unique (run, contact)): a million random UUIDs would dirty a random leaf page each, in order
        they fill pages one after another; in SQL a million rows took two thirds of the random order's time
        (docs/decisions/032). The address is the contact's now, as the row-by-row writer takes it; a contact
        deleted since it was read is left out. ON CONFLICT only when rows exist already (a fan-out run again
        after a crash skips what the first one wrote): it costs a check per row."""
        if not self._staging:
            return
        with connection.cursor() as cursor:
            # The temporary tables have no statistics until analysed: without them the join is planned
            # for a few thousand rows.
            cursor.execute("ANALYZE _fan_out_plan")
            # The planner would merge-join the contacts through their primary key, because that order is the
            # one asked for: a million random heap reads, twice the hash join's time (EXPLAIN ANALYZE,
            # docs/decisions/032). Set for the rest of this transaction only.
            cursor.execute("SET LOCAL enable_mergejoin = off")
            cursor.execute(self._insert_plan_sql(), self._insert_plan_params())
            self.written += cursor.rowcount
            cursor.execute("DROP TABLE _fan_out_plan, _fan_out_reasons")
        self._staging = False

    def _insert_plan_sql(self) -> str:
        history = (
            "CASE WHEN r.history THEN p.opens || ' opens' || "
            "CASE WHEN p.clicks > 0 THEN ', ' || p.clicks || ' clicks' ELSE '' END ELSE '' END"
        )
        varying = {
            "contact_id": "p.contact_id",
            "email": "p.email",
            "send_at": "p.send_at",
            "send_reason_code": "r.code",
            "send_reason": f"left(r.head || {history} || r.tail, 200)",
        }
        select = [varying.get(f.attname) or f"CAST(%s AS {f.cast_db_type(connection)})" for f in self.fields]
        table = Delivery._meta.db_table
        cols = ", ".join(connection.ops.quote_name(c) for c in self.columns)
        contacts = Contact._meta.db_table
        conflict = "" if self.fresh else " ON CONFLICT DO NOTHING"
        # Sorted before the reasons are joined on, so the sort holds the plans and addresses (about 80 bytes
        # a row, in memory), not the reason texts; the reasons (a few hundred) are hashed, and probing them
        # keeps the order. The order is for speed only: nothing depends on it.
        return (
            f"INSERT INTO {table} ({cols}) SELECT {', '.join(select)} FROM ("
            f"SELECT p.*, c.email FROM _fan_out_plan p JOIN {contacts} c ON c.id = p.contact_id "
            "AND c.workspace_id = %s ORDER BY p.contact_id) p "
            f"JOIN _fan_out_reasons r ON r.k = p.reason{conflict}"
        )

    def _insert_plan_params(self) -> list:
        params = [value for f, value in zip(self.fields, self.template, strict=True) if f.attname not in self.VARYING]
        return [*params, self.workspace_id]

    def _bulk_create(self, chunk: list[tuple]) -> None:
        objs = [
            Delivery(
                workspace_id=self.workspace_id,
                run_id=self.run_id,
                campaign_id=self.campaign_id,
                contact_id=contact_id,
                email=email,
                send_at=send_at,
                send_reason_code=code,
                send_reason=reason,
                sandbox=self.sandbox,
            )
            for contact_id, email, send_at, code, reason in chunk
        ]
        before = Delivery.objects.filter(run_id=self.run_id).count()
        Delivery.objects.bulk_create(objs, ignore_conflicts=True)
        self.written += Delivery.objects.filter(run_id=self.run_id).count() - before


# PostgreSQL's binary COPY format: a header, per row a field count and each field as its length and bytes
# (all big-endian), a trailer (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format").
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_PLAN_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("l_id", ">i4"),
        ("id", "V16"),
        ("l_at", ">i4"),
        ("at", ">i8"),
        ("l_reason", ">i4"),
        ("reason", ">i4"),
        ("l_opens", ">i4"),
        ("opens", ">i4"),
        ("l_clicks", ">i4"),
        ("clicks", ">i4"),
    ]
)
_PG_EPOCH = 946684800  # timestamptz counts microseconds from 2000-01-01 UTC


def _plan_copy_bytes(
    ids: bytes, send_at: np.ndarray, reason: np.ndarray, opens: np.ndarray, clicks: np.ndarray
) -> bytes:
    rows = np.empty(len(send_at), dtype=_PLAN_ROW)
    rows["fields"] = 5
    rows["l_id"], rows["l_at"], rows["l_reason"], rows["l_opens"], rows["l_clicks"] = 16, 8, 4, 4, 4
    rows["id"] = np.frombuffer(ids, dtype="V16")
    rows["at"] = (send_at.astype(np.int64) - _PG_EPOCH) * 1_000_000
    rows["reason"] = reason
    rows["opens"] = np.minimum(opens, 2**31 - 1)
    rows["clicks"] = np.minimum(clicks, 2**31 - 1)
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def deliveries_fold_exposure(*, run_id: UUID) -> int:
    """Hand the run's sent deliveries (contact, hand-off time) to the engagement profiles, in chunks."""
    rows = (
        Delivery.objects.filter(
            run_id=run_id, status=S.SENT, sandbox=False, contact__isnull=False, sent_at__isnull=False
        )
        .order_by("id")
        .values_list("workspace_id", "contact_id", "sent_at")
        .iterator(chunk_size=EXPOSURE_CHUNK)
    )
    folded = 0
    while chunk := list(itertools.islice(rows, EXPOSURE_CHUNK)):
        folded += engagement_record_sends(workspace_id=chunk[0][0], sends=[(c, at) for _, c, at in chunk])
    return folded


EXPOSURE_CHUNK = 2000


def delivery_count(*, run_id: UUID) -> int:
    return Delivery.objects.filter(run_id=run_id).count()


# --- events ---------------------------------------------------------------------------------------------


def event_record(
    *,
    workspace_id: UUID,
    type: str,
    email: str = "",
    message_id: str = "",
    delivery_id: int | None = None,
    campaign_id: UUID | None = None,
    run_id: UUID | None = None,
    batch_id: UUID | None = None,
    data: dict | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Write one event (campaign lifecycle, transactional steps, tracking). The send path writes its
    per-message events in bulk with its marks instead (see update_with_events)."""
    if type not in E.values:
        raise ValueError(f"Unknown event type {type!r}")
    return Event.objects.create(
        workspace_id=workspace_id,
        type=type,
        occurred_at=occurred_at or timezone.now(),
        email=email,
        message_id=message_id,
        delivery_id=delivery_id,
        campaign_id=campaign_id,
        run_id=run_id,
        batch_id=batch_id,
        data=data or {},
    )


def events_record(*, events: list[Event]) -> None:
    """Write many prepared (unsaved) events in one INSERT."""
    Event.objects.bulk_create(events)


# --- tracking ---------------------------------------------------------------------------------------------


def _tracked(row: Delivery, type: str, *, user_agent: str, **data) -> Event:
    return event_record(
        workspace_id=row.workspace_id,
        type=type,
        email=row.email,
        message_id=row.message_id,
        delivery_id=row.id,
        campaign_id=row.campaign_id,
        run_id=row.run_id,
        data={"user_agent": (user_agent or "")[:500], **data},
    )


def _tracked_row(delivery_id: int) -> Delivery | None:
    return (
        Delivery.objects.filter(pk=delivery_id)
        .only("id", "workspace_id", "email", "message_id", "campaign_id", "run_id", "contact_id", "sent_at")
        .first()
    )


def _engagement(row: Delivery, kind: str, *, at: datetime, user_agent: str) -> dict:
    """Fold the open or click into the contact's profile (Send Time Optimization, docs/decisions/030);
    the event says whether it was a machine open."""
    event = EngagementEvent(kind=kind, occurred_at=at, user_agent=user_agent or "", handed_off_at=row.sent_at)
    machine = engagement_record(workspace_id=row.workspace_id, contact_id=row.contact_id, email=row.email, event=event)
    return {"machine": True} if machine else {}


def delivery_record_open(*, delivery_id: int, user_agent: str) -> bool:
    """An open pixel was fetched: stamp the first open, log every one. False if the delivery is gone."""
    row = _tracked_row(delivery_id)
    if row is None:
        return False
    now = timezone.now()
    Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(opened_at=now)
    data = _engagement(row, E.OPENED, at=now, user_agent=user_agent)
    _tracked(row, E.OPENED, user_agent=user_agent, **data)
    return True


def delivery_record_click(*, delivery_id: int, url: str, user_agent: str) -> bool:
    """A tracked link was followed. A click implies an open (the pixel may have been blocked)."""
    row = _tracked_row(delivery_id)
    if row is None:
        return False
    now = timezone.now()
    Delivery.objects.filter(pk=delivery_id, clicked_at__isnull=True).update(clicked_at=now)
    Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(opened_at=now)
    _engagement(row, E.CLICKED, at=now, user_agent=user_agent)
    _tracked(row, E.CLICKED, user_agent=user_agent, url=url)
    return True


def delivery_unsubscribe(*, delivery_id: int, user_agent: str) -> bool:
    """The recipient asked to get no more mail: contact `unsubscribed`, address on the suppression list,
    one `unsubscribed` event. Idempotent: asking again changes nothing. False if the delivery is gone."""
    with transaction.atomic():
        row = _tracked_row(delivery_id)
        if row is None:
            return False
        changed = contact_suppress(
            workspace_id=row.workspace_id,
            email=row.email,
            reason=Suppression.Reason.UNSUBSCRIBED,
            contact_id=row.contact_id,
        )
        if changed:
            _tracked(row, E.UNSUBSCRIBED, user_agent=user_agent)
    return True


# Transactional messages are named in their tracking links by a signed MessageRef (delivery.tracking), which
# carries what their events need: the transactional table sits above this app.


def _message_event(ref: tracking.MessageRef, type: str, *, user_agent: str, **data) -> Event:
    return event_record(
        workspace_id=UUID(ref.workspace_id),
        type=type,
        email=ref.email,
        message_id=ref.message_id,
        batch_id=UUID(ref.batch_id),
        data={"user_agent": (user_agent or "")[:500], **data},
    )


def _message_engagement(ref: tracking.MessageRef, kind: str, *, user_agent: str) -> dict:
    # A transactional message's hand-off time lives above this app: only the user agent tells a machine.
    event = EngagementEvent(kind=kind, occurred_at=timezone.now(), user_agent=user_agent or "")
    machine = engagement_record(workspace_id=UUID(ref.workspace_id), email=ref.email, event=event)
    return {"machine": True} if machine else {}


def tracking_record_open(*, target: tracking.Target, user_agent: str) -> bool:
    if isinstance(target, tracking.MessageRef):
        data = _message_engagement(target, E.OPENED, user_agent=user_agent)
        _message_event(target, E.OPENED, user_agent=user_agent, **data)
        return True
    return delivery_record_open(delivery_id=target, user_agent=user_agent)


def tracking_record_click(*, target: tracking.Target, url: str, user_agent: str) -> bool:
    if isinstance(target, tracking.MessageRef):
        _message_engagement(target, E.CLICKED, user_agent=user_agent)
        _message_event(target, E.CLICKED, user_agent=user_agent, url=url)
        return True
    return delivery_record_click(delivery_id=target, url=url, user_agent=user_agent)


def tracking_click_follow(*, click: tracking.Click, user_agent: str, record: bool = True) -> bool:
    """Whether a click link still redirects, recording the click when it does and `record` is set (a HEAD
    from a link scanner is answered, not counted). A link older than TRACKING_CLICK_LINK_MAX_AGE_DAYS
    records nothing (docs/decisions/024). A link signed before click tokens carried a timestamp is as old
    as its message; when the message's send time is gone, its age is unknown and it counts as expired."""
    signed_at = click.signed_at or selectors.tracking_message_sent_at(target=click.target)
    max_age = timedelta(days=settings.TRACKING_CLICK_LINK_MAX_AGE_DAYS)
    if signed_at is None or timezone.now() - signed_at > max_age:
        return False
    if record:
        tracking_record_click(target=click.target, url=click.url, user_agent=user_agent)
    return True


def tracking_unsubscribe(*, target: tracking.Target, user_agent: str) -> bool:
    """Unsubscribe the recipient of a campaign delivery or of a transactional message (see
    delivery_unsubscribe). Idempotent: one event, however often it is asked."""
    if not isinstance(target, tracking.MessageRef):
        return delivery_unsubscribe(delivery_id=target, user_agent=user_agent)
    with transaction.atomic():
        if contact_suppress(
            workspace_id=UUID(target.workspace_id), email=target.email, reason=Suppression.Reason.UNSUBSCRIBED
        ):
            _message_event(target, E.UNSUBSCRIBED, user_agent=user_agent)
    return True


# --- throttles kept as data (docs/decisions/062) -----------------------------------------------------------

MAX_RATE_PER_SECOND = 100_000
MAX_WARMUP_DAYS = 365


def throttle_clean(*, scope: str, domain: str = "", rate_per_second: Any = None, warmup: Any = None) -> dict[str, Any]:
    """The one rule of a throttle's fields, for the API, the admin and direct calls: a known scope, a domain
    exactly when the scope is a domain's, a positive rate or none, and a warm-up ramp only on a sending
    domain. Returns the model's fields; a 400 naming every field otherwise."""
    problems: dict[str, list[str]] = {}
    if scope not in Throttle.Scope.values:
        problems["scope"] = [f"scope must be one of: {', '.join(Throttle.Scope.values)}."]
    domain = (domain or "").strip()
    if scope == Throttle.Scope.WORKSPACE:
        if domain:
            problems["domain"] = ["A workspace throttle has no domain."]
    elif scope in Throttle.Scope.values:
        try:
            domain = normalize_domain(domain)
        except ValueError as exc:
            problems["domain"] = [str(exc)]
    if rate_per_second is not None and (
        isinstance(rate_per_second, bool)
        or not isinstance(rate_per_second, int | float)
        or not 0 < rate_per_second <= MAX_RATE_PER_SECOND
    ):
        problems["rate_per_second"] = [f"rate_per_second must be a number above 0 and at most {MAX_RATE_PER_SECOND}."]
    started_on, caps = _warmup_clean(warmup, scope=scope, problems=problems)
    if rate_per_second is None and caps is None and "rate_per_second" not in problems:
        problems["rate_per_second"] = ["Give rate_per_second, a warm-up, or both."]
    if problems:
        raise errors.ValidationError(details=problems)
    return {
        "scope": scope,
        "domain": domain,
        "rate_per_second": float(rate_per_second) if rate_per_second is not None else None,
        "warmup_started_on": started_on,
        "warmup_daily_caps": caps,
    }


def _warmup_clean(warmup: Any, *, scope: str, problems: dict) -> tuple[date | None, list[int] | None]:
    if warmup is None:
        return None, None
    if scope != Throttle.Scope.SENDING_DOMAIN:
        problems["warmup"] = ["Only a sending_domain throttle takes a warm-up ramp."]
        return None, None
    if not isinstance(warmup, dict):
        problems["warmup"] = ['warmup must be an object: {"started_on": "2026-12-01", "daily_caps": [50, 100]}.']
        return None, None
    for key in sorted(set(map(str, warmup)) - {"started_on", "daily_caps"}):
        problems[f"warmup.{key}"] = ["Unknown field."]
    started_on = None
    raw = warmup.get("started_on")
    try:
        started_on = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
    except ValueError:
        started_on = None
    if started_on is None:
        problems["warmup.started_on"] = ['started_on must be a date "YYYY-MM-DD" (day 1 of the ramp, UTC).']
    caps = warmup.get("daily_caps")
    if (
        not isinstance(caps, list)
        or not 1 <= len(caps) <= MAX_WARMUP_DAYS
        or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in caps)
    ):
        problems["warmup.daily_caps"] = [
            f"daily_caps must be a list of 1 to {MAX_WARMUP_DAYS} whole numbers of messages, each at least 1."
        ]
        caps = None
    return started_on, caps


def throttle_create(*, workspace: Workspace, **fields) -> Throttle:
    throttle = Throttle(workspace=workspace, **throttle_clean(**fields))
    return _throttle_save(throttle)


def throttle_update(*, workspace: Workspace, instance: Throttle, **fields) -> Throttle:
    """Change a throttle; the fields not given keep their values and the result is checked whole. Send
    batches read throttles when they start, so the change reaches a running send within a batch."""
    if instance.workspace_id != workspace.pk:
        raise errors.NotFound()
    current = {
        "scope": instance.scope,
        "domain": instance.domain,
        "rate_per_second": instance.rate_per_second,
        "warmup": throttle_warmup(instance),
    }
    for name, value in throttle_clean(**{**current, **fields}).items():
        setattr(instance, name, value)
    return _throttle_save(instance)


def throttle_delete(*, workspace: Workspace, instance: Throttle) -> None:
    deleted, _ = Throttle.objects.filter(workspace=workspace, pk=instance.pk).delete()
    if not deleted:
        raise errors.NotFound()


def throttle_warmup(throttle: Throttle) -> dict | None:
    if throttle.warmup_started_on is None or not throttle.warmup_daily_caps:
        return None
    return {"started_on": throttle.warmup_started_on.isoformat(), "daily_caps": list(throttle.warmup_daily_caps)}


def _throttle_save(throttle: Throttle) -> Throttle:
    what = f"{throttle.scope} {throttle.domain}".strip()
    with unique_or_400("domain", f"This workspace already has a {what} throttle; edit that one."):
        throttle.save()
    return throttle


# --- ESP events in (django-anymail's tracking webhooks, docs/decisions/042) --------------------------------


def esp_event_record(*, event: InboundEspEvent) -> Event | None:
    """Take in one ESP tracking event about one recipient: find our message by its Message-ID (a campaign
    delivery's `sent` event, else a registered message source such as transactional mail), write the event,
    suppress the address on a hard bounce, a complaint or an unsubscribe, and tell the owner of the message.
    An event already taken in (same ESP, event id and recipient), or about a message we never sent, changes
    nothing and returns None."""
    target = _esp_target(event.message_ids)
    if target is None:
        logger.info("ESP event %s %s: no message of ours with id %s", event.esp, event.event_id, event.message_ids)
        return None
    with transaction.atomic():
        try:
            with transaction.atomic():
                EspEvent.objects.create(esp=event.esp, event_id=event.event_id, recipient=event.recipient.lower())
        except IntegrityError:
            return None  # a duplicate: ESPs deliver their webhooks at least once
        recorded = event_record(
            workspace_id=target["workspace_id"],
            type=event.type,
            email=target["email"] or event.recipient,
            message_id=target["message_id"],
            delivery_id=target.get("delivery_id"),
            campaign_id=target.get("campaign_id"),
            run_id=target.get("run_id"),
            batch_id=target.get("batch_id"),
            data=event.data,
            occurred_at=event.occurred_at,
        )
        reason = event.suppression_reason
        if reason:
            contact_suppress(workspace_id=target["workspace_id"], email=event.recipient, reason=reason)
        signals.esp_event_recorded.send(sender=Event, event=recorded)
    return recorded


def _esp_target(message_ids: set[str]) -> dict | None:
    if not message_ids:
        return None
    sent = (
        Event.objects.filter(message_id__in=message_ids, type=E.SENT, delivery_id__isnull=False)
        .order_by("id")
        .values("workspace_id", "email", "message_id", "delivery_id", "campaign_id", "run_id")
        .first()
    )
    if sent is not None:
        return sent
    for source in message_sources():
        found = source.find_by_header(message_ids)
        if found is not None:
            return {
                "workspace_id": found.workspace_id,
                "email": found.email,
                "message_id": found.message_id,
                "batch_id": found.batch_id,
            }
    return None


# --- engagement history (docs/decisions/030) -------------------------------------------------------------

ENGAGEMENT_IMPORT_MAX_EVENTS = 10_000
HISTORY_TYPES = (E.OPENED, E.CLICKED)


@dataclass
class EngagementImportResult:
    imported: int = 0
    skipped: list = None  # [{"index", "reason"}]

    def __post_init__(self):
        self.skipped = self.skipped or []


def _history_row(row, *, now: datetime) -> tuple[str, str, datetime, str] | str:
    """(email, type, occurred_at, user_agent) of an imported event, or why it is skipped."""
    if not isinstance(row, dict):
        return "an event must be an object"
    email, kind, when, agent = row.get("email"), row.get("type"), row.get("occurred_at"), row.get("user_agent", "")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        return "email is missing or not an address"
    if kind not in HISTORY_TYPES:
        return "type must be opened or clicked"
    if agent is None:
        agent = ""
    if not isinstance(agent, str) or "\x00" in agent:
        return "user_agent must be text"
    try:
        occurred_at = datetime.fromisoformat(when) if isinstance(when, str) else None
    except ValueError:
        occurred_at = None
    if occurred_at is None:
        return "occurred_at must be an ISO 8601 date and time"
    if occurred_at.tzinfo is None:
        return "occurred_at needs an offset or Z"
    if occurred_at > now + timedelta(minutes=5):
        return "occurred_at is in the future"
    return normalize_email(email), kind, occurred_at.astimezone(UTC), agent[:500]


def engagement_import(*, workspace_id: UUID, rows: list, now: datetime | None = None, first_index: int = 0):
    """Import opens and clicks from a previous ESP: each becomes an event exactly like a tracked one
    (marked `imported`) and is folded into its contact's profile. A bad row or an unknown contact is skipped
    with its reason (its index counts from `first_index`); the rest are imported."""
    now = now or timezone.now()
    result = EngagementImportResult()
    parsed = []
    for index, row in enumerate(rows, start=first_index):
        value = _history_row(row, now=now)
        if isinstance(value, str):
            result.skipped.append({"index": index, "reason": value})
        else:
            parsed.append((index, *value))
    emails = {email for _, email, *_ in parsed}
    contacts = dict(Contact.objects.filter(workspace_id=workspace_id, email__in=emails).values_list("email", "pk"))
    folded, events = [], []
    for index, email, kind, occurred_at, agent in parsed:
        if email not in contacts:
            result.skipped.append({"index": index, "reason": "no contact with this email in this workspace"})
            continue
        folded.append((contacts[email], EngagementEvent(kind=kind, occurred_at=occurred_at, user_agent=agent)))
        events.append(
            Event(
                workspace_id=workspace_id,
                type=kind,
                occurred_at=occurred_at,
                email=email,
                data={"user_agent": agent, "imported": True},
            )
        )
    with transaction.atomic():
        machine = engagement_record_many(workspace_id=workspace_id, events=folded)
        for event, is_machine in zip(events, machine, strict=True):
            if is_machine:
                event.data["machine"] = True
        events_record(events=events)
    result.imported = len(events)
    result.skipped.sort(key=lambda s: s["index"])
    return result


REBUILD_CHUNK = 1000


def engagement_rebuild(*, workspace_id: UUID) -> int:
    """Recompute every profile of the workspace from the event table (opens and clicks, tracked or
    imported) and the deliveries' hand-off times (exposure, and the hand-off a machine open came too soon
    after), with the settings in force now. Contact by contact-id chunk; returns the profiles written."""
    contact_rows = Contact.objects.filter(workspace_id=workspace_id).order_by("pk").values_list("pk", "email")
    written = 0
    for chunk in _chunks(contact_rows.iterator(chunk_size=REBUILD_CHUNK), REBUILD_CHUNK):
        written += _rebuild_chunk(workspace_id=workspace_id, contacts=dict(chunk))
    return written


def _chunks(rows, size: int):
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _rebuild_chunk(*, workspace_id: UUID, contacts: dict) -> int:
    by_email = {email: pk for pk, email in contacts.items()}
    events = list(
        Event.objects.filter(workspace_id=workspace_id, email__in=by_email, type__in=HISTORY_TYPES)
        .order_by()
        .values_list("email", "type", "occurred_at", "delivery_id", "data")
    )
    handed_off = dict(Delivery.objects.filter(pk__in={e[3] for e in events if e[3]}).values_list("pk", "sent_at"))
    sends = list(
        Delivery.objects.filter(
            workspace_id=workspace_id, contact_id__in=contacts, status=S.SENT, sent_at__isnull=False
        ).values_list("contact_id", "sent_at")
    )
    history = [
        (
            by_email[email],
            EngagementEvent(
                kind=kind,
                occurred_at=at,
                user_agent=(data or {}).get("user_agent") or "",
                handed_off_at=handed_off.get(delivery_id),
            ),
        )
        for email, kind, at, delivery_id, data in events
    ]
    return engagement_profiles_rebuild(
        workspace_id=workspace_id, contact_ids=list(contacts), events=history, sends=sends
    )
