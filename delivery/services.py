"""The send side of the delivery engine (DESIGN.md §8) and the writes of the tracking endpoints (§10).

`delivery_send_batch` is what the bulk workers run. Its guarantees, and what they cost:

- Claim: one conditional UPDATE takes only rows that are `queued`, due (within a small tolerance, for an
  ETA task that starts a moment early), not leased by a live claim, and whose campaign is sending. A
  redelivered or duplicated task finds nothing to claim and sends nothing.
- Mark: one SQL statement per message writes the previous message's outcome and moves the next one to
  `sending`, right before it is handed to the mail server. A worker killed mid-batch therefore leaves
  exactly one row `sending` (the in-flight message, for the reaper) and the rest either final or
  `queued` (never attempted, safe to send again once the lease runs out). See docs/decisions/010.
- Every write after the claim carries `WHERE lease_until = <this claim's lease>` (a fencing token):
  once a lease has expired and another worker has re-claimed a row, this call can no longer change it.
- Counters of the run move once per batch, not per message; when a run has nothing left to send, its
  counters are recounted from the rows (exact even after a crash) and it becomes `sent`.

Tracking writes take a delivery id read from a signed token (delivery.tracking): the signature is the
authority there, there is no API key and so no workspace to scope by.
"""

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from audience.models import Contact, Suppression, normalize_email
from campaigns.models import Campaign, CampaignRun
from common.rendering import TemplateRenderError
from delivery import sending
from delivery.models import Delivery, DeliveryEvent
from delivery.throttle import SendThrottle

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
    """Exponential backoff after the n-th failed attempt: 60s, 120s, 240s, ... capped at an hour."""
    base = delivery_setting("DELIVERY_RETRY_BASE_SECONDS")
    cap = delivery_setting("DELIVERY_RETRY_MAX_SECONDS")
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


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
_CAMPAIGN_TABLE = Campaign._meta.db_table
_RUN_TABLE = CampaignRun._meta.db_table
S = Delivery.Status


def _dt(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


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
            .select_related("workspace", "contact", "campaign__template")
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
            self._update_runs({row.run_id for row in rows})
        return self.result

    def _relax_commit_durability(self) -> bool:
        """Unless DELIVERY_DURABLE_MARKS, the per-message marks commit without waiting for the WAL flush
        (docs/decisions/010): about half the send time otherwise. A killed worker loses nothing by it (the
        marks are in PostgreSQL the moment they commit); only a crash of PostgreSQL itself can forget the
        last fraction of a second of marks, whose messages may then be sent again."""
        if connection.vendor != "postgresql" or settings.DELIVERY_DURABLE_MARKS:
            return False
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO OFF")
        return True

    def _claim(self) -> set[int]:
        horizon = self.now + timedelta(seconds=delivery_setting("DELIVERY_CLAIM_TOLERANCE_SECONDS"))
        # Conditions on the target row itself (status, lease) are re-checked by PostgreSQL after waiting
        # for a concurrent claim's row lock, so two claims of one row cannot both win. The campaign must
        # be sending (paused: rows stay queued untouched) and the run neither paused nor cancelled.
        sql = f"""
            UPDATE {_TABLE} SET lease_until = %s
            WHERE id IN ({_placeholders(len(self.ids))})
              AND status = %s AND send_at <= %s AND (lease_until IS NULL OR lease_until < %s)
              AND EXISTS (
                SELECT 1 FROM {_CAMPAIGN_TABLE} c, {_RUN_TABLE} r
                WHERE c.id = {_TABLE}.campaign_id AND r.id = {_TABLE}.run_id
                  AND c.status = %s AND r.status NOT IN (%s, %s)
              )
            RETURNING id"""
        params = [
            _dt(self.lease),
            *self.ids,
            S.QUEUED,
            _dt(horizon),
            _dt(self.now),
            Campaign.Status.SENDING,
            CampaignRun.Status.PAUSED,
            CampaignRun.Status.CANCELLED,
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}

    def _cancel_stopped(self, ids: list[int]) -> None:
        """Rows of a cancelled campaign or run end as `cancelled` (DESIGN.md §6: remaining recipients are
        not sent); rows of a paused campaign stay queued untouched."""
        sql = f"""
            UPDATE {_TABLE} SET status = %s, error = %s, lease_until = NULL
            WHERE id IN ({_placeholders(len(ids))}) AND status = %s
              AND (lease_until IS NULL OR lease_until < %s)
              AND EXISTS (
                SELECT 1 FROM {_CAMPAIGN_TABLE} c, {_RUN_TABLE} r
                WHERE c.id = {_TABLE}.campaign_id AND r.id = {_TABLE}.run_id
                  AND (c.status = %s OR r.status = %s)
              )
            RETURNING id"""
        params = [
            S.CANCELLED,
            "campaign cancelled",
            *ids,
            S.QUEUED,
            _dt(self.now),
            Campaign.Status.CANCELLED,
            CampaignRun.Status.CANCELLED,
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            self.result.cancelled = len(cursor.fetchall())

    def _skip_suppressed(self, rows: list[Delivery]) -> list[Delivery]:
        """Check again at send time (DESIGN.md §8): the contact may have unsubscribed or bounced since the
        fan-out. The contacts came with the rows; the suppression list is one query for the batch."""
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
        contents: dict = {}
        transport = sending.Transport()
        try:
            transport.open()
        except sending.SendError as exc:
            logger.warning("Mail server unreachable, %d deliveries requeued: %s", len(rows), exc)
            self._defer(rows, delay=delivery_setting("DELIVERY_CONNECT_RETRY_SECONDS"), error=str(exc))
            return
        try:
            for index, row in enumerate(rows):
                content = contents.get(row.campaign_id)
                if content is None:
                    content = contents[row.campaign_id] = sending.CampaignContent.of(row.campaign)
                if row.contact is not None:
                    row.contact.workspace = row.workspace  # contact_context reads it; same workspace
                try:
                    if not content.from_email:
                        raise TemplateRenderError("The campaign has no from_email.")
                    message = sending.compose(
                        content=content, delivery_id=row.id, to_email=row.email, contact=row.contact
                    )
                except TemplateRenderError as exc:
                    self._end(row, S.QUEUED, S.FAILED, error=f"render: {exc.message} {exc.details or ''}".strip())
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

    def _send_one(self, transport: sending.Transport, row: Delivery, message: sending.OutgoingMessage) -> None:
        attempts = row.attempts + 1
        try:
            transport.send(message)
        except sending.SendError as exc:
            if exc.permanent and exc.recipient_fault:
                self._end(row, S.SENDING, S.BOUNCED, error=str(exc), counter="bounced")
                _suppress_bounce(row)
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
        """Give claimed, never attempted rows back: queued, unleased, due again after `delay`."""
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
        `sending`). Each row changes only from the status we expect and under our lease. Returns
        {id: new status} of the rows it changed."""
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
        where = " OR ".join("(id = %s AND status = %s)" for _ in outcomes)
        params.extend(o.id for o in outcomes)
        for o in outcomes:
            params.extend([o.id, o.from_status])
        params.append(_dt(self.lease))
        # The rows are found by primary key. A plain `lease_until = %s` let PostgreSQL pick the lease index
        # instead (a fresh lease value looks rare to the planner) and scan every row of the batch for each
        # message: 0.8 ms a mark on a 500-row batch instead of 0.1 ms. IS NOT DISTINCT FROM is not indexable,
        # so the lease stays a filter; the lease is never NULL here, so it means the same.
        lease_match = "lease_until IS NOT DISTINCT FROM %s" if connection.vendor == "postgresql" else "lease_until = %s"
        sql = (
            f"UPDATE {_TABLE} SET {', '.join(sets)} WHERE id IN ({_placeholders(len(outcomes))}) "
            f"AND ({where}) AND {lease_match} RETURNING id, status"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            changed = dict(cursor.fetchall())
        if len(changed) < len(outcomes):
            lost = [o.id for o in outcomes if o.id not in changed]
            logger.warning("Deliveries %s changed under this batch (lease lost?); left as they are", lost)
        return changed

    def _update_runs(self, run_ids: set) -> None:
        for run_id, counts in self.run_counts.items():
            if counts:
                CampaignRun.objects.filter(pk=run_id).update(
                    **{name: F(name) + value for name, value in counts.items()}
                )
        for run_id in run_ids:
            run_finish_if_done(run_id=run_id)


def run_finish_if_done(*, run_id) -> bool:
    """When a sending run has nothing queued or in flight, recount its counters from the rows (exact,
    whatever happened to the per-batch increments) and close it through campaigns.services
    .campaign_run_finished, which moves the campaign on (`sent`, or back to `scheduled` when a recurring
    schedule has a next run; a paused or cancelled campaign is left alone). Only a run in `sending` is
    closed here: one still fanning out may get more rows. Guarded conditional UPDATEs, so concurrent
    batches close it once. Returns whether this call closed the run."""
    from campaigns.services import campaign_run_finished  # inside: campaigns.services imports delivery

    if Delivery.objects.filter(run_id=run_id, status__in=[S.QUEUED, S.SENDING]).exists():
        return False
    by_status = {
        row["status"]: row["n"]
        for row in Delivery.objects.filter(run_id=run_id).values("status").annotate(n=Count("id"))
    }
    recounted = CampaignRun.objects.filter(pk=run_id, status=CampaignRun.Status.SENDING).update(
        sent=by_status.get(S.SENT, 0),
        failed=by_status.get(S.FAILED, 0) + by_status.get(S.BOUNCED, 0) + by_status.get(S.UNCERTAIN, 0),
        skipped=by_status.get(S.SKIPPED, 0),
    )
    if not recounted:
        return False
    return campaign_run_finished(run_id=run_id)


def _suppress_bounce(row: Delivery) -> None:
    """A 5xx refusal: the address is dead. Done at once (bounces are rare) so that no later batch, of this
    campaign or another, mails it again."""
    Suppression.objects.bulk_create(
        [
            Suppression(
                workspace_id=row.workspace_id,
                email=normalize_email(row.email),
                reason=Suppression.Reason.BOUNCED,
            )
        ],
        ignore_conflicts=True,
    )
    if row.contact_id:
        Contact.objects.filter(pk=row.contact_id, status=Contact.Status.SUBSCRIBED).update(
            status=Contact.Status.BOUNCED, updated_at=timezone.now()
        )


# --- tracking ---------------------------------------------------------------------------------------------


def _event(delivery_id: int, workspace_id, kind: str, *, user_agent: str, url: str = "") -> DeliveryEvent:
    return DeliveryEvent.objects.create(
        workspace_id=workspace_id,
        delivery_id=delivery_id,
        kind=kind,
        at=timezone.now(),
        user_agent=(user_agent or "")[:500],
        url=url,
    )


def delivery_record_open(*, delivery_id: int, user_agent: str) -> bool:
    """An open pixel was fetched: stamp the first open, log every one. False if the delivery is gone."""
    workspace_id = Delivery.objects.filter(pk=delivery_id).values_list("workspace_id", flat=True).first()
    if workspace_id is None:
        return False
    Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(opened_at=timezone.now())
    _event(delivery_id, workspace_id, DeliveryEvent.Kind.OPENED, user_agent=user_agent)
    return True


def delivery_record_click(*, delivery_id: int, url: str, user_agent: str) -> bool:
    """A tracked link was followed. A click implies an open (the pixel may have been blocked)."""
    workspace_id = Delivery.objects.filter(pk=delivery_id).values_list("workspace_id", flat=True).first()
    if workspace_id is None:
        return False
    now = timezone.now()
    Delivery.objects.filter(pk=delivery_id, clicked_at__isnull=True).update(clicked_at=now)
    Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(opened_at=now)
    _event(delivery_id, workspace_id, DeliveryEvent.Kind.CLICKED, user_agent=user_agent, url=url)
    return True


def delivery_unsubscribe(*, delivery_id: int, user_agent: str) -> bool:
    """The recipient asked to get no more mail: contact `unsubscribed`, address on the suppression list,
    one `unsubscribed` event. Idempotent: asking again changes nothing. False if the delivery is gone."""
    with transaction.atomic():
        row = Delivery.objects.filter(pk=delivery_id).select_related("contact").first()
        if row is None:
            return False
        changed = False
        contact = row.contact
        if contact is not None and contact.status == Contact.Status.SUBSCRIBED:
            contact.status = Contact.Status.UNSUBSCRIBED
            contact.save(update_fields=["status", "updated_at"])
            changed = True
        _, created = Suppression.objects.get_or_create(
            workspace_id=row.workspace_id,
            email=normalize_email(row.email),
            defaults={"reason": Suppression.Reason.UNSUBSCRIBED},
        )
        if changed or created:
            _event(row.id, row.workspace_id, DeliveryEvent.Kind.UNSUBSCRIBED, user_agent=user_agent)
    return True
