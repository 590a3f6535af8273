"""The scheduling side of the delivery engine (docs/architecture.md, docs/decisions/011): the dispatcher
tick that enqueues due deliveries, and the lease reaper. The send side is delivery.services; launching
campaigns and fanning their runs out into Delivery rows is campaigns' (campaigns.launching).

The database is the schedule. Celery only ever carries the near term: every task this module enqueues
has an ETA at most DISPATCH_HORIZON_SECONDS ahead, far inside the broker's visibility timeout, so a
worker never holds hours of ETA tasks and a Redis that loses its data loses no schedule: what was
enqueued and lost is found again in the database (its `enqueued_at` goes stale) and enqueued again.

Every task here is safe to run twice: delivery_send_batch claims its rows with a conditional UPDATE, so
duplicates cost a query, never a second message.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from common.db import try_advisory_xact_lock
from delivery.models import Delivery
from delivery.services import deliveries_settle_dead_claims, delivery_run_check_final, update_with_events
from delivery.sources import run_source

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key of the dispatcher ("mail" in ASCII): one tick at a time in the whole
# cluster, however many beats were started by mistake.
DISPATCH_LOCK_KEY = 0x6D61696C

S = Delivery.Status
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
    deliveries: int = 0
    batches: list[tuple[list[int], datetime | None]] = field(default_factory=list)


def dispatch_due(*, now: datetime | None = None) -> DispatchResult:
    """One tick: enqueue the deliveries that fall due within the horizon.

    Runs under a transaction-level advisory lock, so two beats (or a slow tick overlapping the next) make
    one dispatcher; a tick that finds the lock taken does nothing. Rows are claimed FOR UPDATE SKIP
    LOCKED through partial indexes on their due time, and `due <= now + horizon` includes everything
    overdue: after downtime the backlog is caught up by the ticks themselves.
    """
    now = now or timezone.now()
    result = DispatchResult()
    with transaction.atomic():
        if not try_advisory_xact_lock(DISPATCH_LOCK_KEY):
            result.locked_out = True
            return result
        result.batches = _enqueue_due_deliveries(now=now)
        result.deliveries = sum(len(ids) for ids, _ in result.batches)
    return result


def _enqueue_due_deliveries(*, now: datetime, run_id: UUID | str | None = None) -> list:
    """Claim queued deliveries due within the horizon, in send_at order, and enqueue them as batches.

    A row needs a task when it has none: never enqueued, enqueued so long ago that the task must have
    been lost, moved to a later send_at (a retry) beyond what its last task covered, or enqueued before
    a pause (resume clears it, delivery.services.deliveries_requeue). Rows under a live claim (lease) are
    left to their worker. Only rows of runs their owner calls dispatchable go: pause and stop hold the rest.
    """

    budget = _dispatch_budget()
    if budget <= 0:
        return []
    horizon = _horizon()
    stale = now - timedelta(seconds=_setting("DELIVERY_REENQUEUE_AFTER_SECONDS"))
    queryset = (
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=S.QUEUED, send_at__lte=now + horizon)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale) | Q(send_at__gt=F("enqueued_at") + horizon))
        .filter(run_id__in=run_source().dispatchable_run_ids())
    )
    if run_id is not None:
        queryset = queryset.filter(run_id=run_id)
    rows = list(queryset.order_by("send_at", "id").values_list("id", "send_at")[:budget])
    if not rows:
        return []
    Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(enqueued_at=now)
    batches = [(ids, _eta(send_at, now=now)) for ids, send_at in _batches(rows)]
    for ids, eta in batches:
        transaction.on_commit(lambda i=ids, e=eta: enqueue_send_batch(i, eta=e), robust=True)
    return batches


# Priority 6 on Redis (where 0 is served first, Celery's "Redis message priorities"): a run's fan-out
# (priority 0) overtakes a backlog of send batches on the shared bulk queue, so a launch is never stuck
# behind another campaign's sending. By name, so this module need not import the task module (which
# imports it): the queue and priority are stated here, where the batches are made.
SEND_BATCH_TASK = "delivery.tasks.send_batch"
SEND_BATCH_PRIORITY = 6


def enqueue_send_batch(delivery_ids: list[int], *, eta: datetime | None = None) -> None:
    current_app.send_task(SEND_BATCH_TASK, args=[delivery_ids], eta=eta, queue=BULK_QUEUE, priority=SEND_BATCH_PRIORITY)


def delivery_dispatch_run(*, run_id: UUID) -> list:
    """Enqueue what is due of one run now, without waiting for the next tick (right after its fan-out)."""
    with transaction.atomic():
        return _enqueue_due_deliveries(now=timezone.now(), run_id=run_id)


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

        _redis_client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=5)
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


def queue_depths() -> dict[str, int | None]:
    """Tasks waiting in each of the project's queues (CELERY_TASK_QUEUES_NAMES), for the operators' home
    page; None for all of them when Redis cannot answer, so the page says so instead of showing zeros."""
    names = list(settings.CELERY_TASK_QUEUES_NAMES)
    try:
        pipe = _redis().pipeline(transaction=False)
        for name in names:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(name + suffix)
        lengths = pipe.execute()
    except Exception:  # noqa: BLE001 - a page that reports on Redis must not fail with it
        logger.warning("Cannot read the queue lengths", exc_info=True)
        return dict.fromkeys(names)
    step = len(_PRIORITY_SUFFIXES)
    return {name: sum(lengths[i * step : (i + 1) * step]) for i, name in enumerate(names)}


def remember(key: str, seconds: int) -> bool:
    """SET NX with expiry: True the first time within `seconds` (or when Redis cannot answer)."""
    try:
        return bool(_redis().set(key, "1", nx=True, ex=max(1, int(seconds))))
    except Exception:  # noqa: BLE001
        return True


# --- the reaper ------------------------------------------------------------------------------------------


@dataclass
class ReapResult:
    requeued: int = 0  # claimed, never attempted: back to the queue
    settled_sent: int = 0  # marked `sending` by a dead batch that had handed them over: sent
    retried: int = 0  # in flight when the worker died: queued again, flagged possible_duplicate
    uncertain: int = 0  # in flight when the worker died: ended `uncertain`, flagged
    runs_closed: list = field(default_factory=list)


def reap_leases(*, now: datetime | None = None) -> ReapResult:
    """Give back what dead workers held.

    A claim whose lease ran out belonged to a worker that died (a live one renews its lease as it goes).
    Its `sending` rows are first settled from its progress row (delivery.services.
    deliveries_settle_dead_claims): those it had handed over are sent, those it had not are queued again.
    Its never-attempted rows (`queued`) are simply due again. Its in-flight row (the one `sending` row
    left, at most one per batch) may or may not have reached the mail server; DELIVERY_LEASE_EXPIRED_POLICY
    decides: "retry" queues it again flagged possible_duplicate (a `deferred` event), "uncertain" ends it
    flagged, unsent by us (a `failed` event). Neither resends a whole batch, and nothing is dropped
    silently. The reset clears the lease, so the dead claim's fencing token no longer matches anything.
    A run whose last rows ended here is reported final to its owner.
    """
    now = now or timezone.now()
    result = ReapResult()
    # First what the dead batches' progress rows tell: which of their `sending` rows went out and which
    # were never attempted. Left `sending` after it: the one in flight per dead batch.
    settled = deliveries_settle_dead_claims(now=now)
    result.settled_sent = settled.sent
    result.requeued = settled.requeued + Delivery.objects.filter(status=S.QUEUED, lease_until__lt=now).update(
        lease_until=None, enqueued_at=None
    )
    expired = "status = %s AND lease_until < %s"
    expired_params = [S.SENDING, connection.ops.adapt_datetimefield_value(now)]
    # A stopped run sends nothing more, not even a retry.
    stopped_sql, stopped_params = run_source().stopped_run_ids().query.sql_with_params()
    uncertain_where, uncertain_params = f"{expired} AND run_id IN ({stopped_sql})", [*expired_params, *stopped_params]
    if settings.DELIVERY_LEASE_EXPIRED_POLICY == "uncertain":
        uncertain_where, uncertain_params = expired, expired_params
    ended = update_with_events(
        set_sql="status = %s, lease_until = NULL, possible_duplicate = %s, error = %s",
        set_params=[S.UNCERTAIN, True, "worker lost while sending: the message may or may not have been delivered"],
        where_sql=uncertain_where,
        where_params=uncertain_params,
        flags=("uncertain",),
    )
    result.uncertain = len(ended)
    retried = []
    if settings.DELIVERY_LEASE_EXPIRED_POLICY != "uncertain":
        retried = update_with_events(
            set_sql="status = %s, lease_until = NULL, enqueued_at = NULL, possible_duplicate = %s, error = %s",
            set_params=[S.QUEUED, True, "worker lost while sending: sent again, the recipient may get it twice"],
            where_sql=expired,
            where_params=expired_params,
            flags=("possible_duplicate",),
        )
        result.retried = len(retried)
    if result.requeued or result.retried or result.uncertain or result.settled_sent:
        logger.warning(
            "Reaper: %s handed over by dead batches marked sent, %s claimed deliveries requeued, %s in-flight "
            "retried, %s in-flight uncertain",
            result.settled_sent,
            result.requeued,
            result.retried,
            result.uncertain,
        )
    runs = set(settled.run_ids)
    if ended:
        runs.update(Delivery.objects.filter(pk__in=[pk for pk, _ in ended]).values_list("run_id", flat=True))
    for run_id in runs:
        if delivery_run_check_final(run_id=run_id):
            result.runs_closed.append(run_id)
    return result
