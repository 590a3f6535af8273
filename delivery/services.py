"""The send side of the delivery engine and the writes of the tracking endpoints (docs/architecture.md,
"Delivery engine" and "Events").

`delivery_send_batch` is what the bulk workers run. Its guarantees, and what they cost:

- Claim: one conditional UPDATE takes only rows that are `queued`, due (within a small tolerance, for an
  ETA task that starts a moment early), not leased by a live claim, and whose run may send (the run's
  owner answers that, see delivery.sources). A redelivered or duplicated task finds nothing to claim.
- Mark: one SQL statement per message writes the previous message's outcome (and its event) and moves
  the next one to `sending`, right before it is handed to the mail server. A worker killed mid-batch
  therefore leaves exactly one row `sending` (the in-flight message, for the reaper) and the rest either
  final or `queued` (never attempted, safe to send again once the lease runs out). docs/decisions/010.
- Every write after the claim carries `WHERE lease_until = <this claim's lease>` (a fencing token):
  once a lease has expired and another worker has re-claimed a row, this call can no longer change it.
- The events of the outcomes are written by the mark statement itself (a data-modifying CTE on PostgreSQL),
  so an outcome and its event commit together: none is lost when a worker is killed, none doubled by
  concurrent batches (docs/decisions/015 says what that costs).
- The run's owner hears of progress once per batch (`deliveries_counted`) and of the end of a run when
  nothing is left queued or in flight (`run_deliveries_final`), through delivery.signals.

Tracking writes take a delivery id read from a signed token (delivery.tracking): the signature is the
authority there, there is no API key and so no workspace to scope by.
"""

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audience.models import Contact, Suppression, normalize_email
from audience.services import contact_suppress
from common.rendering import TemplateBudgetExceeded, TemplateRenderError
from delivery import selectors, sending, signals, tracking
from delivery.mime import HeaderInjection
from delivery.models import Delivery, Event
from delivery.sources import run_source
from delivery.throttle import SendThrottle
from delivery.transport import SendError, Transport, backoff_delay

logger = logging.getLogger(__name__)

DEFAULTS = {
    # How long a claim is exclusive. Longer than a batch can take (the task's hard time limit), so a
    # live worker never loses its rows; after it, a crashed batch's rows can be claimed again.
    "DELIVERY_LEASE_SECONDS": 660,
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
    sql = (
        f"SELECT workspace_id, CASE status {cases} END, COALESCE(sent_at, %s), email, message_id, id, "
        "campaign_id, run_id, "
        f"{data} "
        f"FROM {source} WHERE status <> 'sending'"
    )
    return sql, [_dt(occurred_at)]


def update_with_events(
    *, set_sql: str, set_params: list, where_sql: str, where_params: list, flags: tuple[str, ...] = ()
) -> list:
    """UPDATE deliveries and write one event per changed row, atomically. Returns [(id, status)]."""
    now = timezone.now()
    returning = "id, status, workspace_id, email, message_id, run_id, campaign_id, error, send_at, sent_at"
    update = f"UPDATE {_TABLE} SET {set_sql} WHERE {where_sql} RETURNING {returning}"
    with transaction.atomic(), connection.cursor() as cursor:
        if _is_postgres():
            select, select_params = _event_select(source="changed", occurred_at=now, flags=flags)
            cursor.execute(
                f"WITH changed AS ({update}), ev AS (INSERT INTO {_EVENT_TABLE} ({_EVENT_COLUMNS}) {select}) "
                "SELECT id, status FROM changed",
                [*set_params, *where_params, *select_params],
            )
            return cursor.fetchall()
        cursor.execute(update, [*set_params, *where_params])
        rows = cursor.fetchall()
        if rows:
            ids = [row[0] for row in rows]
            select, select_params = _event_select(source=_TABLE, occurred_at=now, flags=flags)
            cursor.execute(
                f"INSERT INTO {_EVENT_TABLE} ({_EVENT_COLUMNS}) {select} AND id IN ({_placeholders(len(ids))})",
                [*select_params, *ids],
            )
        return [(row[0], row[1]) for row in rows]


def delivery_send_batch(*, delivery_ids: list[int], throttle: SendThrottle | None = None) -> BatchResult:
    """Send the given deliveries once each (see the module docstring). Safe to run twice, concurrently,
    or after a crash: rows already claimed, sent or ended are not touched."""
    return _Batch(delivery_ids=delivery_ids, throttle=throttle).run()


class _Batch:
    def __init__(self, *, delivery_ids: list[int], throttle: SendThrottle | None):
        self.ids = sorted({int(i) for i in delivery_ids})
        self.throttle = throttle if throttle is not None else SendThrottle()
        self.result = BatchResult()
        self.now = timezone.now()
        # The lease doubles as this claim's fencing token, so it must be unique to this call: the
        # microseconds of `now` plus the lease length make a collision of two calls practically impossible,
        # and a collision would still only let two calls share rows neither could double-mark (status guards).
        self.lease = self.now + timedelta(seconds=delivery_setting("DELIVERY_LEASE_SECONDS"))
        self.pending: list[_Outcome] = []
        self.run_counts: dict = defaultdict(Counter)

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
            Delivery.objects.filter(id__in=claimed, lease_until=self.lease)
            .select_related("workspace", "contact")
            .order_by("id")
        )
        relaxed = self._relax_commit_durability()
        try:
            sendable = self._skip_suppressed(rows)
            if sendable:
                self._send_all(sendable)
        finally:
            self._flush()
            if relaxed:
                with connection.cursor() as cursor:
                    cursor.execute("RESET synchronous_commit")
            self._report({row.run_id for row in rows})
        return self.result

    def _relax_commit_durability(self) -> bool:
        """Unless DELIVERY_DURABLE_MARKS, the per-message marks commit without waiting for the WAL flush
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

    # --- the send loop --------------------------------------------------------------------------------

    def _send_all(self, rows: list[Delivery]) -> None:
        contents = run_source().contents({row.run_id for row in rows})
        blueprints: dict = {}
        # A run whose message ran out of its render budget (docs/decisions/018) would spend it again for each
        # of its rows: the rest of them in this batch fail with the same reason, unrendered.
        spent: dict = {}
        transport = Transport()
        try:
            transport.open()
        except SendError as exc:
            logger.warning("Mail server unreachable, %d deliveries requeued: %s", len(rows), exc)
            self._defer(rows, delay=delivery_setting("DELIVERY_CONNECT_RETRY_SECONDS"), error=str(exc))
            return
        try:
            for index, row in enumerate(rows):
                if row.contact is not None:
                    row.contact.workspace = row.workspace  # contact_context reads it; same workspace
                if row.run_id in spent:
                    self._end(row, S.QUEUED, S.FAILED, error=spent[row.run_id])
                    continue
                try:
                    content = contents.get(row.run_id)
                    if content is None:
                        raise TemplateRenderError("The run's message is gone.")
                    if not content.from_email:
                        raise TemplateRenderError("The campaign has no from_email.")
                    if row.run_id not in blueprints:
                        try:
                            blueprints[row.run_id] = sending.blueprint_for(content)
                        except HeaderInjection as exc:  # a sender stored before the rule: every row fails
                            blueprints[row.run_id] = exc
                    if isinstance(blueprints[row.run_id], HeaderInjection):
                        raise blueprints[row.run_id]
                    message = sending.compose(
                        content=content,
                        blueprint=blueprints[row.run_id],
                        delivery_id=row.id,
                        to_email=row.email,
                        contact=row.contact,
                    )
                except TemplateRenderError as exc:
                    if isinstance(exc, TemplateBudgetExceeded):
                        spent[row.run_id] = f"render: {exc.message}"
                    self._end(row, S.QUEUED, S.FAILED, error=f"render: {exc.message}")
                    continue
                except HeaderInjection as exc:
                    self._end(row, S.QUEUED, S.FAILED, error=f"refused: {exc}")
                    continue
                wait = self._admit(row)
                if wait:
                    self._defer(rows[index:], delay=wait, error="")
                    return
                if not self._mark_sending(row):
                    continue
                self._send_one(transport, row, message)
        finally:
            transport.close()

    def _admit(self, row: Delivery) -> float:
        """0 when the throttle lets this message go now, else how long to requeue the rest for. Short
        waits are slept (the exact time until a token, no polling); outcomes are written first, so
        nothing sits unrecorded during the sleep."""
        budget = float(delivery_setting("DELIVERY_THROTTLE_MAX_WAIT_SECONDS"))
        while True:
            wait = self.throttle.acquire(workspace_id=row.workspace_id, email=row.email)
            if wait <= 0:
                return 0.0
            if wait > budget:
                return wait
            self._flush()
            time.sleep(wait)
            budget -= wait

    def _mark_sending(self, row: Delivery) -> bool:
        outcome = _Outcome(row.id, S.QUEUED, S.SENDING, attempt=1, keep_lease=True)
        marked = self._write([*self.pending, outcome])
        self.pending = []
        # Not marked: our lease was lost (expired and re-claimed) or the row was ended meanwhile.
        return marked.get(row.id) == S.SENDING

    def _send_one(self, transport: Transport, row: Delivery, message: sending.OutgoingMessage) -> None:
        attempts = row.attempts + 1
        try:
            sending.hand_off(transport, message)
        except SendError as exc:
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
            return
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

    def _defer(self, rows: list[Delivery], *, delay: float, error: str) -> None:
        """Give claimed, never attempted rows back: queued, unleased, due again after `delay`. Not an
        event: nothing was attempted (a throttle wait or an unreachable server is ours, not the message's)."""
        self._flush()
        send_at = timezone.now() + timedelta(seconds=delay)
        ids = [row.id for row in rows]
        sql = f"""UPDATE {_TABLE} SET lease_until = NULL, enqueued_at = NULL, send_at = %s, error = %s
                  WHERE id IN ({_placeholders(len(ids))}) AND status = %s AND lease_until = %s"""
        with connection.cursor() as cursor:
            cursor.execute(sql, [_dt(send_at), error[:500], *ids, S.QUEUED, _dt(self.lease)])
            self.result.deferred += cursor.rowcount

    # --- writes ---------------------------------------------------------------------------------------

    def _flush(self) -> None:
        if self.pending:
            self._write(self.pending)
            self.pending = []

    def _write(self, outcomes: list[_Outcome]) -> dict[int, str]:
        """One UPDATE for any number of rows (usually two: the last message's outcome and the next one's
        `sending`), with the events of the outcomes in the same statement. Each row changes only from the
        status we expect and under our lease. Returns {id: new status} of the rows it changed."""
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
        where_params: list = [o.id for o in outcomes]
        for o in outcomes:
            where_params.extend([o.id, o.from_status])
        where_params.append(_dt(self.lease))
        # The rows are found by primary key. A plain `lease_until = %s` let PostgreSQL pick the lease index
        # instead (a fresh lease value looks rare to the planner) and scan every row of the batch for each
        # message: 0.8 ms a mark on a 500-row batch instead of 0.1 ms. IS NOT DISTINCT FROM is not indexable,
        # so the lease stays a filter; the lease is never NULL here, so it means the same.
        lease_match = "lease_until IS NOT DISTINCT FROM %s" if _is_postgres() else "lease_until = %s"
        where = " OR ".join("(id = %s AND status = %s)" for _ in outcomes)
        # The outcomes' events are written by the same statement (update_with_events): exact under SIGKILL and
        # under concurrent batches of one run. A buffered variant was faster but raced the end-of-run
        # reconciliation into duplicate events (docs/decisions/015).
        rows = update_with_events(
            set_sql=", ".join(sets),
            set_params=params,
            where_sql=f"id IN ({_placeholders(len(outcomes))}) AND ({where}) AND {lease_match}",
            where_params=where_params,
        )
        changed = dict(rows)
        if len(changed) < len(outcomes):
            lost = [o.id for o in outcomes if o.id not in changed]
            logger.warning("Deliveries %s changed under this batch (lease lost?); left as they are", lost)
        return changed

    def _report(self, run_ids: set) -> None:
        for run_id, counts in self.run_counts.items():
            if counts:
                signals.deliveries_counted.send(sender=Delivery, run_id=run_id, counts=dict(counts))
        for run_id in run_ids:
            delivery_run_check_final(run_id=run_id)


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

    VARYING = ("contact_id", "email", "send_at", "send_reason")

    def __init__(self, *, workspace_id: UUID, run_id: UUID, campaign_id: UUID):
        self.workspace_id, self.run_id, self.campaign_id = workspace_id, run_id, campaign_id
        # A run with no rows yet (the usual first attempt, under the fan-out's per-run lock) can COPY
        # straight into the table; a re-run after a crash must skip the rows the first attempt wrote.
        self.fresh = not Delivery.objects.filter(run_id=run_id).exists()
        self.written = 0
        fixed = {"workspace_id": workspace_id, "run_id": run_id, "campaign_id": campaign_id, "status": S.QUEUED}
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
                p_contact, p_email, p_send_at, p_reason = self.positions
                for contact_id, email, send_at, reason in chunk:
                    row[p_contact] = contact_id
                    row[p_email] = email
                    row[p_send_at] = send_at
                    row[p_reason] = reason
                    copy.write_row(row)
            if self.fresh:
                self.written += len(chunk)
                return
            cursor.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _fan_out_stage ON CONFLICT DO NOTHING")
            self.written += cursor.rowcount
            cursor.execute("DROP TABLE _fan_out_stage")

    def _bulk_create(self, chunk: list[tuple]) -> None:
        objs = [
            Delivery(
                workspace_id=self.workspace_id,
                run_id=self.run_id,
                campaign_id=self.campaign_id,
                contact_id=contact_id,
                email=email,
                send_at=send_at,
                send_reason=reason,
            )
            for contact_id, email, send_at, reason in chunk
        ]
        before = Delivery.objects.filter(run_id=self.run_id).count()
        Delivery.objects.bulk_create(objs, ignore_conflicts=True)
        self.written += Delivery.objects.filter(run_id=self.run_id).count() - before


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
        .only("id", "workspace_id", "email", "message_id", "campaign_id", "run_id", "contact_id")
        .first()
    )


def delivery_record_open(*, delivery_id: int, user_agent: str) -> bool:
    """An open pixel was fetched: stamp the first open, log every one. False if the delivery is gone."""
    row = _tracked_row(delivery_id)
    if row is None:
        return False
    Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(opened_at=timezone.now())
    _tracked(row, E.OPENED, user_agent=user_agent, machine=tracking.is_machine_open(user_agent))
    return True


def delivery_record_click(*, delivery_id: int, url: str, user_agent: str) -> bool:
    """A tracked link was followed. A click implies an open (the pixel may have been blocked)."""
    row = _tracked_row(delivery_id)
    if row is None:
        return False
    now = timezone.now()
    Delivery.objects.filter(pk=delivery_id, clicked_at__isnull=True).update(clicked_at=now)
    Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(opened_at=now)
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


def tracking_record_open(*, target: tracking.Target, user_agent: str) -> bool:
    if isinstance(target, tracking.MessageRef):
        _message_event(target, E.OPENED, user_agent=user_agent, machine=tracking.is_machine_open(user_agent))
        return True
    return delivery_record_open(delivery_id=target, user_agent=user_agent)


def tracking_record_click(*, target: tracking.Target, url: str, user_agent: str) -> bool:
    if isinstance(target, tracking.MessageRef):
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
