from celery import shared_task


@shared_task(queue="default", acks_late=True, ignore_result=True)
def contact_import_process(import_id: str) -> None:
    """Process one uploaded CSV. Run twice, the second run finds it no longer pending and does nothing."""
    from audience.services import contact_import_process as process  # import inside: no cycles at start

    process(import_id=import_id)
