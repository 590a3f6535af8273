"""Thin Celery wrappers: ids in, one service call. Each is safe to run twice (campaigns.launching)."""

from datetime import datetime

from celery import shared_task

from campaigns import launching, services


@shared_task(queue="default", acks_late=True, ignore_result=True)
def dispatch_due() -> None:
    """Beat runs this every few seconds (SYSTEM_PERIODIC_TASKS): launches, lost fan-outs, ended runs."""
    launching.campaigns_dispatch_due()


@shared_task(bind=True, queue="default", acks_late=True, ignore_result=True)
def launch_campaign(self, campaign_id: str, due_at_iso: str) -> None:
    """Launch at the scheduled instant. A task that starts early (clock skew) comes back when it is due."""
    wait = launching.launch_due(campaign_id=campaign_id, due_at=datetime.fromisoformat(due_at_iso))
    if wait is not None:
        self.apply_async(args=[campaign_id, due_at_iso], countdown=wait)


@shared_task(queue="bulk", acks_late=True, ignore_result=True, priority=0)
def run_fan_out(run_id: str) -> None:
    launching.run_fan_out(run_id=run_id)


@shared_task(queue="default", acks_late=True, ignore_result=True)
def fold_run_exposure(run_id: str) -> None:
    services.campaign_run_fold_exposure(run_id=run_id)
