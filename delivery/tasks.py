from celery import shared_task


# Priority 6 on Redis (where 0 is served first, Celery's "Redis message priorities"): a run's fan-out
# (priority 0) overtakes a backlog of send batches on the shared bulk queue, so a launch is never stuck
# behind another campaign's sending.
@shared_task(queue="bulk", acks_late=True, ignore_result=True, priority=6)
def send_batch(delivery_ids: list[int]) -> None:
    """Thin wrapper. The batch service is idempotent, so a redelivered task (acks_late) sends nothing
    twice."""
    from delivery.services import delivery_send_batch  # inside: no import cycles at worker start

    delivery_send_batch(delivery_ids=delivery_ids)


# --- The scheduling side (delivery.engine, docs/decisions/011): thin wrappers, ids in. ------------------


@shared_task(queue="default", acks_late=True, ignore_result=True)
def dispatch_due() -> None:
    """Beat runs this every few seconds (SYSTEM_PERIODIC_TASKS); resume and launches call it too."""
    from delivery.engine import dispatch_due as tick

    tick()


@shared_task(bind=True, queue="default", acks_late=True, ignore_result=True)
def launch_campaign(self, campaign_id: str, due_at_iso: str) -> None:
    """Launch at the scheduled instant. A task that starts early (clock skew) comes back when it is due."""
    from datetime import datetime

    from delivery.engine import launch_due

    due_at = datetime.fromisoformat(due_at_iso)
    wait = launch_due(campaign_id=campaign_id, due_at=due_at)
    if wait is not None:
        self.apply_async(args=[campaign_id, due_at_iso], countdown=wait)


@shared_task(queue="bulk", acks_late=True, ignore_result=True)
def run_fan_out(run_id: str) -> None:
    from delivery.engine import run_fan_out as fan_out

    fan_out(run_id=run_id)


@shared_task(queue="default", acks_late=True, ignore_result=True)
def reap_leases() -> None:
    from delivery.engine import reap_leases as reap

    reap()
