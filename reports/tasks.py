"""Thin Celery wrappers (ids in, one service call), each safe to run twice."""

from celery import shared_task

from reports import services


@shared_task(queue="default", acks_late=True, ignore_result=True)
def aggregate() -> None:
    """Beat runs this every REPORTS_AGGREGATE_EVERY_SECONDS (SYSTEM_PERIODIC_TASKS)."""
    services.reports_aggregate()


@shared_task(queue="default", acks_late=True, ignore_result=True)
def build_export(export_id: str) -> None:
    services.report_export_build(export_id=export_id)


@shared_task(queue="default", acks_late=True, ignore_result=True)
def expire_exports() -> None:
    services.report_exports_expire()
