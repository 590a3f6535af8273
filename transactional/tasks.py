"""Thin Celery wrappers. One send task per priority, each bound to its queue (see
transactional.services.SEND_TASK_OF_QUEUE): a plain `.delay()` can never put a high-priority message on
the low queue. The claim inside makes every send safe to run twice (acks_late redelivery)."""

from celery import shared_task

from transactional.services import transactional_dispatch_due, transactional_message_send


@shared_task(queue="tx_high", acks_late=True, ignore_result=True)
def send_high(message_id: str) -> None:
    transactional_message_send(message_id=message_id)


@shared_task(queue="tx_low", acks_late=True, ignore_result=True)
def send_low(message_id: str) -> None:
    transactional_message_send(message_id=message_id)


@shared_task(queue="default", acks_late=True, ignore_result=True)
def dispatch_due() -> None:
    """Beat runs this every second or two (SYSTEM_PERIODIC_TASKS)."""
    transactional_dispatch_due()
