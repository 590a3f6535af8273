"""Campaigns' side of the engine (docs/architecture.md, "Delivery engine", docs/decisions/011): the tick
that launches due campaigns, the fan-out of a run into Delivery rows, and closing runs nobody closed.

The database is the schedule: every task this module enqueues has an ETA at most DISPATCH_HORIZON_SECONDS
ahead (delivery.engine's horizon), so Redis never holds hours of ETA tasks and losing it loses no schedule.
Every task here is safe to run twice: the launch is guarded in campaigns.services.campaign_launch, the
fan-out writes with ON CONFLICT DO NOTHING on (run, contact) under a per-run advisory lock.

The delivery app below owns Delivery rows and sending; this module hands it the rows to write
(delivery.services.DeliveryWriter) and asks it to enqueue what is due (delivery.engine).
"""

import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from campaigns.models import Campaign, CampaignRun
from campaigns.planning import STO_CHUNK, ChunkPlan, RunPlanner, SendPolicy
from campaigns.selectors import campaign_recipient_chunks, campaign_recipient_id_chunks, campaign_recipients
from campaigns.services import campaign_launch, campaign_run_deliveries_final, campaign_run_failed, enqueue_fan_out
from common.db import try_advisory_xact_lock
from common.heap import steady_heap
from delivery import engine as delivery_engine
from delivery.models import Delivery
from delivery.selectors import workspace_complaint_rate
from delivery.services import DeliveryWriter, deliveries_cancel, delivery_count

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key of the launch tick ("camp" in ASCII): one at a time in the cluster.
LAUNCH_LOCK_KEY = 0x63616D70
# Class id of the per-run session advisory lock a fan-out holds (the object id is hashtext(run id)).
FANOUT_LOCK_CLASS = 0x666F7574  # "fout"
# How many due campaigns one tick launches at most; the rest go on the next tick.
LAUNCHES_PER_TICK = 500
RUNS_PER_TICK = 100

R = CampaignRun.Status
S = Delivery.Status
LAUNCH_TASK = "campaigns.tasks.launch_campaign"


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


# --- the launch tick -------------------------------------------------------------------------------------


@dataclass
class LaunchTickResult:
    locked_out: bool = False
    launches: int = 0
    fan_outs: int = 0
    runs_closed: list = field(default_factory=list)


def campaigns_dispatch_due(*, now: datetime | None = None) -> LaunchTickResult:
    """One tick: enqueue launches falling due within the horizon and fan-outs that were lost, and close
    runs whose deliveries all ended without anyone closing them. Under a transaction-level advisory lock,
    so two beats make one tick; `due <= now + horizon` includes everything overdue (catch-up after
    downtime)."""
    now = now or timezone.now()
    result = LaunchTickResult()
    with transaction.atomic():
        if not try_advisory_xact_lock(LAUNCH_LOCK_KEY):
            result.locked_out = True
            return result
        result.launches = _enqueue_launches(now=now)
        result.fan_outs = _enqueue_lost_fan_outs(now=now)
    result.runs_closed = close_ended_runs()
    return result


def _horizon() -> timedelta:
    return timedelta(seconds=settings.DISPATCH_HORIZON_SECONDS)


def _eta(when: datetime, *, now: datetime) -> datetime | None:
    """None (run now) for what is already due; never beyond the horizon."""
    if when <= now:
        return None
    return min(when, now + _horizon())


def _enqueue_launches(*, now: datetime) -> int:
    """Scheduled campaigns due within the horizon get a launch task with eta = their instant."""
    grace = now - timedelta(seconds=settings.DELIVERY_LAUNCH_REENQUEUE_AFTER_SECONDS)
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
            lambda c=str(campaign_id), d=due_at: current_app.send_task(
                LAUNCH_TASK, args=[c, d.isoformat()], eta=_eta(d, now=now), queue="default"
            ),
            robust=True,
        )
    return len(due)


def _enqueue_lost_fan_outs(*, now: datetime) -> int:
    """Runs whose fan-out task never ran (lost with Redis) or died half-way (worker killed) get it again.

    A re-enqueue is remembered in Redis for the grace period, so a long fan-out still running is not sent
    a new task every tick; and if Redis lost that marker, it lost the task too.
    """
    grace = settings.DELIVERY_FANOUT_REENQUEUE_AFTER_SECONDS
    before = now - timedelta(seconds=grace)
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
        if not delivery_engine.remember(f"mailsched:fanout-enqueued:{run_id}", grace):
            continue
        logger.warning("Run %s was not fanned out in time; enqueuing its fan-out again", run_id)
        transaction.on_commit(lambda r=run_id: enqueue_fan_out(r), robust=True)
        enqueued += 1
    return enqueued


def close_ended_runs() -> list:
    """Runs `sending` with every delivery ended: the worker that sent the last one died before reporting
    it. They are closed the usual way (counters recounted from the rows, campaign moved on)."""
    open_rows = Delivery.objects.filter(run_id=OuterRef("pk"), status__in=[S.QUEUED, S.SENDING])
    ended = CampaignRun.objects.filter(status=R.SENDING).exclude(Exists(open_rows)).values_list("pk", flat=True)
    return [run_id for run_id in list(ended[:RUNS_PER_TICK]) if campaign_run_deliveries_final(run_id=run_id)]


def launch_due(*, campaign_id: UUID | str, due_at: datetime, now: datetime | None = None) -> float | None:
    """Launch the campaign if its instant has come. Returns the seconds still to wait when the task ran
    early (clock skew between beat and worker), for the task to come back then; None otherwise."""
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
    advisory lock on the run while it works, so a twin task returns at once. Returns None when there was
    nothing to do (run gone, ended, fanned out already, or held by another worker).
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
        complaints = workspace_complaint_rate(workspace=run.campaign.workspace)
        if complaints.level == "hold":
            # Checked at launch as well as at send/schedule: a schedule set while the rate was fine must not
            # send into a mailbox provider that is about to block the workspace (docs/decisions/082).
            campaign_run_failed(run_id=run_id, reason=f"held: {complaints.message()}")
            return FanOutResult(status=R.FAILED)
        try:
            return _fan_out(run=run, now=now)
        except Exception as exc:
            logger.exception("Fan-out of run %s failed", run_id)
            campaign_run_failed(run_id=run_id, reason=f"fan-out failed: {type(exc).__name__}: {exc}")
            return FanOutResult(status=R.FAILED)


def _fan_out(*, run: CampaignRun, now: datetime) -> FanOutResult:
    campaign = run.campaign
    policy = SendPolicy.for_campaign(campaign=campaign, launch_at=run.due_at, occurrence=run.occurrence_at)
    planner = RunPlanner(policy=policy, workspace=campaign.workspace)
    recipients = campaign_recipients(workspace=campaign.workspace, campaign=campaign, run=run)
    writer = DeliveryWriter(
        workspace_id=run.workspace_id, run_id=run.pk, campaign_id=run.campaign_id, sandbox=run.sandbox
    )
    size = settings.DELIVERY_FANOUT_CHUNK_SIZE
    if planner.sto and _is_postgres():
        with transaction.atomic():
            planner.choose_holdout(campaign_recipient_id_chunks(recipients=recipients))
        _fan_out_columns(run=run, planner=planner, recipients=recipients, writer=writer, size=size)
        return _finish_fan_out(run=run, writer=writer, now=now)
    planner.choose_holdout(campaign_recipient_id_chunks(recipients=recipients))
    rows = recipients.order_by().values_list(*planner.columns).iterator(chunk_size=size)
    while chunk := list(itertools.islice(rows, size)):
        writer.write(planner.plan(chunk))
        if CampaignRun.objects.filter(pk=run.pk, status=R.CANCELLED).exists():
            break
    return _finish_fan_out(run=run, writer=writer, now=now)


def _fan_out_columns(*, run: CampaignRun, planner: RunPlanner, recipients, writer: DeliveryWriter, size: int) -> None:
    """The STO fan-out on PostgreSQL (docs/decisions/031, 032): profiles read by a binary cursor into arrays
    and scored by numpy, STO_CHUNK recipients at a time (a profile is 1.4 KB as read, and scoring copies it
    a few times: this bounds the worker's memory); their plans (a few numbers each) staged in a temporary
    table by one binary COPY every few chunks, and written to the deliveries by one statement at the end. One
    transaction for the whole run: the cursor lives in it, and a worker killed half-way leaves nothing to
    skip on the re-run. A run cancelled meanwhile stops at the next chunk and writes nothing."""
    pending: list[ChunkPlan] = []
    with steady_heap(), transaction.atomic():
        for chunk in campaign_recipient_chunks(recipients=recipients, size=min(size, STO_CHUNK)):
            pending.append(planner.plan_chunk(chunk))
            if sum(map(len, pending)) >= 4 * size:
                # Many plans a COPY: each statement waits for the prefetch thread's fetch to finish (they
                # share the connection), and one a scored chunk cost a tenth of the fan-out.
                writer.stage_plan(ChunkPlan.join(pending))
                pending.clear()
                if CampaignRun.objects.filter(pk=run.pk, status=R.CANCELLED).exists():
                    return
        if pending:
            writer.stage_plan(ChunkPlan.join(pending))
        writer.insert_staged()


def _finish_fan_out(*, run: CampaignRun, writer: DeliveryWriter, now: datetime) -> FanOutResult:
    written = writer.written
    # A run with no rows before this fan-out (under its lock) has exactly the rows it wrote: no count of a
    # million rows to learn it. A re-run after a crash counts what the first attempt left too.
    total = written if writer.fresh else delivery_count(run_id=run.pk)
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
            deliveries_cancel(run_id=run.pk, reason="campaign stopped")
            CampaignRun.objects.filter(pk=run.pk).update(total=total)
    logger.info("Run %s fanned out: %s deliveries (%s new)", run.pk, total, written)
    if status == R.SENDING:
        if total == 0:
            campaign_run_deliveries_final(run_id=run.pk, now=now)
            status = R.SENT
        else:
            # The launch does not wait for the next tick: what is due goes to the workers now.
            delivery_engine.delivery_dispatch_run(run_id=run.pk)
    return FanOutResult(written=written, total=total, status=status)


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
