"""Thin Celery wrappers: ids in, one service call. Both are safe to run twice."""

from celery import shared_task

from audience.services import IMPORTS_QUEUE, contact_import_reap, contact_import_run


# On its own queue and worker (docs/decisions/019): an import is long and heavy on the database, and the
# default queue carries the clock's ticks.
@shared_task(bind=True, queue=IMPORTS_QUEUE, acks_late=True, ignore_result=True)
def contact_import_process(self, import_id: str) -> None:
    """A few chunks from the checkpoint, then the rest as a new task. A redelivered or superseded task (its
    id is no longer the import's) does nothing."""
    contact_import_run(import_id=import_id, task_id=self.request.id)


@shared_task(queue="default", acks_late=True, ignore_result=True)
def reap_imports() -> None:
    """Beat runs this every CONTACT_IMPORT_REAP_EVERY_SECONDS (SYSTEM_PERIODIC_TASKS)."""
    contact_import_reap()
