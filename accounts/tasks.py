"""Thin Celery wrappers around accounts services."""

from celery import shared_task

from accounts.services import idempotency_records_expire as expire


@shared_task(queue="default", acks_late=True, ignore_result=True)
def idempotency_records_expire() -> None:
    """Beat runs this (SYSTEM_PERIODIC_TASKS). Deleting what is already gone is harmless, so a redelivered
    task does no harm either."""
    expire()
