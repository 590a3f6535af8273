"""The scheduling side of the delivery engine (DESIGN.md §8, docs/decisions/011): the dispatcher tick,
the fan-out of a run into Delivery rows, and the lease reaper. The send side is delivery.services.

The database is the schedule. Celery only ever carries the near term: every task this module enqueues
has an ETA at most DISPATCH_HORIZON_SECONDS ahead, far inside the broker's visibility timeout, so a
worker never holds hours of ETA tasks and a Redis that loses its data loses no schedule: what was
enqueued and lost is found again in the database (its `enqueued_at` goes stale) and enqueued again.

Every task here is safe to run twice. The launch is guarded in campaigns.services.campaign_launch, the
fan-out writes with ON CONFLICT DO NOTHING on (run, contact), and delivery_send_batch claims its rows
with a conditional UPDATE. Duplicates cost a query, never a second message.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from campaigns.models import Campaign, CampaignRun
from delivery.models import Delivery
from delivery.planning import SendPolicy, plan_send_time

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key of the dispatcher ("mail" in ASCII): one tick at a time in the whole
# cluster, however many beats were started by mistake.
DISPATCH_LOCK_KEY = 0x6D61696C
# Class id of the per-run session advisory lock a fan-out holds (the object id is hashtext(run id)).
FANOUT_LOCK_CLASS = 0x666F7574  # "fout"
# How many due campaigns one tick launches at most; the rest go on the next tick.
LAUNCHES_PER_TICK = 500
RUNS_PER_TICK = 100

S = Delivery.Status
R = CampaignRun.Status
BULK_QUEUE = "bulk"
# kombu's Redis transport keeps a queue's priority steps as separate lists: "bulk", "bulk\x06\x163", ...
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_redis_client = None


def _setting(name: str):
    return getattr(settings, name)


def _horizon() -> timedelta:
    return timedelta(seconds=settings.DISPATCH_HORIZON_SECONDS)


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


# --- the dispatcher tick ---------------------------------------------------------------------------------


@dataclass
class DispatchResult:
    locked_out: bool = False  # another dispatcher held the lock: this tick did nothing
    launches: int = 0
    fan_outs: int = 0
    deliveries: int = 0
    batches: list[tuple[list[int], datetime | None]] = field(default_factory=list)


def dispatch_due(*, now: datetime | None = None) -> DispatchResult:
    """One tick: enqueue the launches, lost fan-outs and deliveries that fall due within the horizon.

    Runs under a transaction-level advisory lock, so two beats (or a slow tick overlapping the next) make
    one dispatcher; a tick that finds the lock taken does nothing. Rows are claimed FOR UPDATE SKIP
    LOCKED through partial indexes on their due time, and `due <= now + horizon` includes everything
    overdue: after downtime the backlog is caught up by the ticks themselves.
    """
    now = now or timezone.now()
    result = DispatchResult()
    with transaction.atomic():
        if _is_postgres():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [DISPATCH_LOCK_KEY])
                if not cursor.fetchone()[0]:
                    result.locked_out = True
                    return result
        result.launches = _enqueue_launches(now=now)
        result.fan_outs = _enqueue_lost_fan_outs(now=now)
        result.batches = _enqueue_due_deliveries(now=now)
        result.deliveries = sum(len(ids) for ids, _ in result.batches)
    return result


def _enqueue_launches(*, now: datetime) -> int:
    """Scheduled campaigns due within the horizon get a launch task with eta = their instant."""
    from delivery.tasks import launch_campaign

    grace = now - timedelta(seconds=_setting("DELIVERY_LAUNCH_REENQUEUE_AFTER_SECONDS"))
    due = list(
        Campaign.objects.select_for_update(skip_locked=True)
        .filter(status=Campaign.Status.SCHEDULED, next_run_at__lte=now + _horizon())
        .filter(Q(launch_enqueued_at__isnull=True) | Q(launch_enqueued_at__lt=grace))
        .order_by("next_run_at")
        .values_list("id", "next_run_at")[:LAUNCHES_PER_TICK]
    )
    if not due:
        return 0
    Campaign.objects.filter(pk__in=[pk for pk, _ in due]).update(launch_enqueued_at=now)
    for campaign_id, due_at in due:
        transaction.on_commit(
            lambda c=str(campaign_id), d=due_at: launch_campaign.apply_async(
                args=[c, d.isoformat()], eta=_eta(d, now=now)
            ),
            robust=True,
        )
    return len(due)


def _enqueue_lost_fan_outs(*, now: datetime) -> int:
    """Runs whose fan-out task never ran (lost with Redis) or died half-way (worker killed) get it again.

    A re-enqueue is remembered in Redis for the grace period, so a long fan-out still running is not sent
    a new task every tick; and if Redis lost that marker, it lost the task too.
    """
    from delivery.tasks import run_fan_out

    before = now - timedelta(seconds=_setting("DELIVERY_FANOUT_REENQUEUE_AFTER_SECONDS"))
    stuck = list(
        CampaignRun.objects.filter(
            Q(status=R.PENDING, created_at__lt=before)
            | Q(status=R.FANNING_OUT, launched_at__lt=before)
            | Q(status=R.PAUSED, total=0, launched_at__lt=before)
        )
        .order_by("due_at")
        .values_list("id", flat=True)[:RUNS_PER_TICK]
    )
    enqueued = 0
    for run_id in stuck:
        if not _remember(
            f"mailsched:fanout-enqueued:{run_id}", _setting("DELIVERY_FANOUT_REENQUEUE_AFTER_SECONDS")
        ):
            continue
        logger.warning("Run %s was not fanned out in time; enqueuing its fan-out again", run_id)
        transaction.on_commit(lambda r=str(run_id): run_fan_out.delay(r), robust=True)
        enqueued += 1
    return enqueued


def _enqueue_due_deliveries(*, now: datetime, run_id: UUID | str | None = None) -> list:
    """Claim queued deliveries due within the horizon, in send_at order, and enqueue them as batches.

    A row needs a task when it has none: never enqueued, enqueued so long ago that the task must have
    been lost, moved to a later send_at (a retry) beyond what its last task covered, or enqueued before
    a pause (the task ran and left it). Rows under a live claim (lease) are left to their worker. Only
    rows of sending runs go: pause and stop hold the rest.
    """
    from delivery.tasks import send_batch

    budget = _dispatch_budget()
    if budget <= 0:
        return []
    horizon = _horizon()
    stale = now - timedelta(seconds=_setting("DELIVERY_REENQUEUE_AFTER_SECONDS"))
    queryset = (
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=S.QUEUED, send_at__lte=now + horizon)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .filter(
            Q(enqueued_at__isnull=True)
            | Q(enqueued_at__lt=stale)
            | Q(send_at__gt=F("enqueued_at") + horizon)
            # Enqueued before the campaign last changed state (a pause, then resume): that task found the
            # campaign paused and claimed nothing, so a resumed campaign goes on at once.
            | Q(enqueued_at__lt=F("campaign__updated_at"))
        )
        .filter(run__status__in=[R.SENDING, R.FANNING_OUT])
        .filter(campaign__status__in=[Campaign.Status.SENDING, Campaign.Status.SCHEDULED])
    )
    if run_id is not None:
        queryset = queryset.filter(run_id=run_id)
    rows = list(queryset.order_by("send_at", "id").values_list("id", "send_at")[:budget])
    if not rows:
        return []
    Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(enqueued_at=now)
    batches = [(ids, _eta(send_at, now=now)) for ids, send_at in _batches(rows)]
    for ids, eta in batches:
        transaction.on_commit(lambda i=ids, e=eta: send_batch.apply_async(args=[i], eta=e), robust=True)
    return batches


def _batches(rows: list[tuple[int, datetime]]) -> Iterable[tuple[list[int], datetime]]:
    """Consecutive rows (in send_at order), at most DELIVERY_BATCH_SIZE, spanning at most the spread.
    Yields (ids, latest send_at): the batch's ETA is its latest row's time, so no one gets mail early."""
    size = _setting("DELIVERY_BATCH_SIZE")
    spread = timedelta(seconds=_setting("DELIVERY_BATCH_SPREAD_SECONDS"))
    ids: list[int] = []
    first = last = None
    for pk, send_at in rows:
        if ids and (len(ids) >= size or send_at - first > spread):
            yield ids, last
            ids = []
        if not ids:
            first = send_at
        ids.append(pk)
        last = send_at
    if ids:
        yield ids, last


def _eta(when: datetime, *, now: datetime) -> datetime | None:
    """None (run now) for what is already due; never beyond the horizon, whatever the caller passed."""
    if when <= now:
        return None
    return min(when, now + _horizon())


def _dispatch_budget() -> int:
    """How many deliveries this tick may enqueue: fewer while the bulk queue is already long."""
    per_tick = _setting("DELIVERY_DISPATCH_MAX_PER_TICK")
    waiting = bulk_queue_length()
    room = _setting("DELIVERY_BULK_QUEUE_MAX_BATCHES") - waiting
    return max(0, min(per_tick, room * _setting("DELIVERY_BATCH_SIZE")))


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=5
        )
    return _redis_client


def bulk_queue_length() -> int:
    """Tasks waiting in the broker's bulk queue (ETA tasks already taken by a worker are not counted)."""
    try:
        pipe = _redis().pipeline(transaction=False)
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(BULK_QUEUE + suffix)
        return sum(pipe.execute())
    except Exception:  # noqa: BLE001 - Redis away: enqueueing fails too, and the rows stay due in PostgreSQL
        logger.warning("Cannot read the bulk queue length", exc_info=True)
        return 0


def _remember(key: str, seconds: int) -> bool:
    """SET NX with expiry: True the first time within `seconds` (or when Redis cannot answer)."""
    try:
        return bool(_redis().set(key, "1", nx=True, ex=max(1, int(seconds))))
    except Exception:  # noqa: BLE001
        return True


# --- the launch task's rule ------------------------------------------------------------------------------


def launch_due(*, campaign_id: UUID | str, due_at: datetime, now: datetime | None = None) -> float | None:
    """Launch the campaign if its instant has come. Returns the seconds still to wait when the task ran
    early (clock skew between beat and worker), for the task to come back then; None otherwise."""
    from campaigns.services import campaign_launch

    now = now or timezone.now()
    if due_at > now:
        return (due_at - now).total_seconds()
    campaign_launch(campaign_id=campaign_id, due_at=due_at, now=now)
    return None


# --- fan-out ---------------------------------------------------------------------------------------------


@dataclass
class FanOutResult:
    written: int = 0  # rows this call inserted (a re-run inserts only what was missing)
    total: int = 0  # rows the run has now
    status: str = ""


def run_fan_out(*, run_id: UUID | str, now: datetime | None = None) -> FanOutResult | None:
    """Write one Delivery per recipient of the run, each with its send time, then set the run sending.

    Streams the audience (one SQL query, a server-side cursor) and writes in chunks with ON CONFLICT DO
    NOTHING, so memory stays flat and a fan-out killed half-way is simply run again. Holds a session
    advisory lock on the run while it works, so a twin task waits its turn by returning at once. Returns
    None when there was nothing to do (run gone, ended, fanned out already, or held by another worker).
    """
    now = now or timezone.now()
    with _fan_out_lock(run_id) as acquired:
        if not acquired:
            logger.info("Run %s is being fanned out by another worker", run_id)
            return None
        CampaignRun.objects.filter(pk=run_id, status=R.PENDING).update(status=R.FANNING_OUT, launched_at=now)
        run = CampaignRun.objects.select_related("campaign__workspace").filter(pk=run_id).first()
        # total > 0 on an open run means its fan-out finished (an empty one ends the run at once).
        if run is None or run.status not in (R.FANNING_OUT, R.PAUSED) or run.total:
            return None
        try:
            return _fan_out(run=run, now=now)
        except Exception as exc:
            logger.exception("Fan-out of run %s failed", run_id)
            from campaigns.services import campaign_run_failed

            campaign_run_failed(run_id=run_id, reason=f"fan-out failed: {type(exc).__name__}: {exc}")
            return FanOutResult(status=R.FAILED)


def _fan_out(*, run: CampaignRun, now: datetime) -> FanOutResult:
    from campaigns.selectors import campaign_recipients

    campaign = run.campaign
    policy = SendPolicy.for_campaign(campaign=campaign, launch_at=run.due_at, occurrence=run.occurrence_at)
    planned: dict[str, tuple[datetime, str]] = {}  # send time depends on the zone only: once per zone

    def plan(zone: str) -> tuple[datetime, str]:
        if zone not in planned:
            send_at, reason = plan_send_time(policy=policy, contact_timezone=zone)
            planned[zone] = (send_at, reason[:200])
        return planned[zone]

    recipients = campaign_recipients(workspace=campaign.workspace, campaign=campaign)
    # A run with no rows yet (the usual first attempt, under the per-run lock) can COPY straight into the
    # table; a re-run after a crash must skip the rows the first attempt wrote.
    writer = _DeliveryWriter(run=run, fresh=not Delivery.objects.filter(run=run).exists())
    chunk: list[tuple] = []
    size = _setting("DELIVERY_FANOUT_CHUNK_SIZE")
    rows = recipients.order_by().values_list("id", "email", "timezone").iterator(chunk_size=size)
    for contact_id, email, zone in rows:
        send_at, reason = plan(zone or "")
        chunk.append((contact_id, email, send_at, reason))
        if len(chunk) >= size:
            writer.write(chunk)
            chunk = []
            if _run_was_stopped(run.pk):
                break
    if chunk:
        writer.write(chunk)
    return _finish_fan_out(run=run, written=writer.written, now=now)


def _run_was_stopped(run_id) -> bool:
    return CampaignRun.objects.filter(pk=run_id, status=R.CANCELLED).exists()


def _finish_fan_out(*, run: CampaignRun, written: int, now: datetime) -> FanOutResult:
    from campaigns.services import campaign_run_finished

    total = Delivery.objects.filter(run=run).count()
    with transaction.atomic():
        status = CampaignRun.objects.select_for_update().values_list("status", flat=True).get(pk=run.pk)
        if status == R.FANNING_OUT:
            CampaignRun.objects.filter(pk=run.pk).update(status=R.SENDING, total=total)
            status = R.SENDING
        elif status == R.PAUSED:
            # Paused during the fan-out: the rows are all there; resume sets the run sending.
            CampaignRun.objects.filter(pk=run.pk).update(total=total)
        elif status == R.CANCELLED:
            # Stopped during the fan-out: rows written after the stop cancelled the queue are cancelled too.
            Delivery.objects.filter(run=run, status=S.QUEUED).update(
                status=S.CANCELLED, error="campaign stopped"
            )
            CampaignRun.objects.filter(pk=run.pk).update(total=total)
    logger.info("Run %s fanned out: %s deliveries (%s new)", run.pk, total, written)
    if status == R.SENDING:
        if total == 0:
            campaign_run_finished(run_id=run.pk, now=now)
            status = R.SENT
        else:
            # The launch does not wait for the next tick: what is due goes to the workers now.
            with transaction.atomic():
                _enqueue_due_deliveries(now=timezone.now(), run_id=run.pk)
    return FanOutResult(written=written, total=total, status=status)


class _DeliveryWriter:
    """Inserts Delivery rows, skipping (run, contact) pairs that exist. PostgreSQL: COPY into a temporary
    table, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING (COPY alone cannot skip conflicts).
    Elsewhere: bulk_create(ignore_conflicts=True)."""

    VARYING = ("contact_id", "email", "send_at", "send_reason")

    def __init__(self, *, run: CampaignRun, fresh: bool = False):
        self.run = run
        self.fresh = fresh
        self.written = 0
        fixed = {
            "workspace_id": run.workspace_id,
            "run_id": run.pk,
            "campaign_id": run.campaign_id,
            "status": S.QUEUED,
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
                    "CREATE TEMPORARY TABLE _fan_out_stage ON COMMIT DROP AS "
                    f"SELECT {cols} FROM {table} WITH NO DATA"
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
            cursor.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _fan_out_stage ON CONFLICT DO NOTHING"
            )
            self.written += cursor.rowcount
            cursor.execute("DROP TABLE _fan_out_stage")

    def _bulk_create(self, chunk: list[tuple]) -> None:
        objs = [
            Delivery(
                workspace_id=self.run.workspace_id,
                run_id=self.run.pk,
                campaign_id=self.run.campaign_id,
                contact_id=contact_id,
                email=email,
                send_at=send_at,
                send_reason=reason,
            )
            for contact_id, email, send_at, reason in chunk
        ]
        before = Delivery.objects.filter(run=self.run).count()
        Delivery.objects.bulk_create(objs, ignore_conflicts=True)
        self.written += Delivery.objects.filter(run=self.run).count() - before


class _fan_out_lock:
    """Session advisory lock on one run (PostgreSQL); released at exit or when the connection dies with a
    killed worker. Elsewhere always acquired: the unique (run, contact) keeps twins harmless anyway."""

    def __init__(self, run_id):
        self.key = str(run_id)
        self.acquired = False

    def __enter__(self) -> bool:
        if not _is_postgres():
            self.acquired = True
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [FANOUT_LOCK_CLASS, self.key])
            self.acquired = bool(cursor.fetchone()[0])
        return self.acquired

    def __exit__(self, *exc) -> None:
        if self.acquired and _is_postgres():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [FANOUT_LOCK_CLASS, self.key])


# --- the reaper ------------------------------------------------------------------------------------------


@dataclass
class ReapResult:
    requeued: int = 0  # claimed, never attempted: back to the queue
    retried: int = 0  # in flight when the worker died: queued again, flagged possible_duplicate
    uncertain: int = 0  # in flight when the worker died: ended `uncertain`, flagged
    runs_closed: list = field(default_factory=list)


def reap_leases(*, now: datetime | None = None) -> ReapResult:
    """Give back what dead workers held, and close runs nobody closed.

    A claim whose lease ran out belonged to a worker that died (a live one finishes well inside its
    lease). Its never-attempted rows (`queued`) are simply due again. Its in-flight row (`sending`, at
    most one per batch) may or may not have reached the mail server; DELIVERY_LEASE_EXPIRED_POLICY
    decides: "retry" queues it again flagged possible_duplicate, "uncertain" ends it flagged, unsent by
    us. Neither resends a whole batch, and nothing is dropped silently. The reset clears the lease, so
    the dead claim's fencing token no longer matches anything.
    """
    now = now or timezone.now()
    result = ReapResult()
    result.requeued = Delivery.objects.filter(status=S.QUEUED, lease_until__lt=now).update(
        lease_until=None, enqueued_at=None
    )
    in_flight = Delivery.objects.filter(status=S.SENDING, lease_until__lt=now)
    uncertain = Q(run__status=R.CANCELLED)  # a stopped run sends nothing more, not even a retry
    if settings.DELIVERY_LEASE_EXPIRED_POLICY == "uncertain":
        uncertain = Q()
    result.uncertain = in_flight.filter(uncertain).update(
        status=S.UNCERTAIN,
        lease_until=None,
        possible_duplicate=True,
        error="worker lost while sending: the message may or may not have been delivered",
    )
    if settings.DELIVERY_LEASE_EXPIRED_POLICY != "uncertain":
        result.retried = in_flight.update(
            status=S.QUEUED,
            lease_until=None,
            enqueued_at=None,
            possible_duplicate=True,
            error="worker lost while sending: sent again, the recipient may get it twice",
        )
    if result.requeued or result.retried or result.uncertain:
        logger.warning(
            "Reaper: %s claimed deliveries requeued, %s in-flight retried, %s in-flight uncertain",
            result.requeued,
            result.retried,
            result.uncertain,
        )
    result.runs_closed = _close_ended_runs(now=now)
    return result


def _close_ended_runs(*, now: datetime) -> list:
    """Runs `sending` with every delivery ended: the worker that sent the last one died before closing
    the run. They are closed the usual way (counters recounted from the rows, campaign moved on)."""
    from delivery.services import run_finish_if_done

    open_rows = Delivery.objects.filter(run_id=OuterRef("pk"), status__in=[S.QUEUED, S.SENDING])
    ended = (
        CampaignRun.objects.filter(status=R.SENDING).exclude(Exists(open_rows)).values_list("pk", flat=True)
    )
    return [run_id for run_id in list(ended[:100]) if run_finish_if_done(run_id=run_id)]
