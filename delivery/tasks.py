"""Thin Celery wrappers: ids in, one service call. Every service here is safe to run twice."""

from celery import shared_task

from delivery import engine
from delivery.services import delivery_send_batch


# The queue and priority are set where the batches are enqueued (delivery.engine.enqueue_send_batch); they
# are repeated here so that a plain `send_batch.delay(ids)` lands in the same place.
@shared_task(queue=engine.BULK_QUEUE, acks_late=True, ignore_result=True, priority=engine.SEND_BATCH_PRIORITY)
def send_batch(delivery_ids: list[int]) -> None:
    """The batch service is idempotent, so a redelivered task (acks_late) sends nothing twice."""
    delivery_send_batch(delivery_ids=delivery_ids)


@shared_task(queue="default", acks_late=True, ignore_result=True)
def dispatch_due() -> None:
    """Beat runs this every few seconds (SYSTEM_PERIODIC_TASKS); resume calls it too."""
    engine.dispatch_due()


@shared_task(queue="default", acks_late=True, ignore_result=True)
def reap_leases() -> None:
    engine.reap_leases()
