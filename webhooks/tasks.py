"""Thin Celery wrappers on the `default` queue: ids in, one service call, each safe to run twice."""

from celery import shared_task
from django.utils.dateparse import parse_datetime

from webhooks import services


@shared_task(queue="default", acks_late=True, ignore_result=True)
def dispatch_due() -> None:
    """Beat runs this every WEBHOOK_DISPATCH_EVERY_SECONDS (SYSTEM_PERIODIC_TASKS)."""
    services.webhook_dispatch_due()


@shared_task(queue="default", acks_late=True, ignore_result=True)
def deliver(endpoint_id: str, lease: str) -> None:
    """Only the holder of the endpoint's current lease sends; a duplicate finds it changed and does nothing."""
    services.webhook_endpoint_deliver(endpoint_id=endpoint_id, lease=parse_datetime(lease))
