from celery import shared_task


@shared_task(queue="tx_low", acks_late=True, ignore_result=True)
def send_message(message_id: str) -> None:
    """Enqueued on tx_high or tx_low by the message's priority. The claim inside makes it safe to run
    twice: a redelivered task (acks_late) sends nothing a second time."""
    from transactional.services import transactional_message_send  # inside: no cycles at worker start

    transactional_message_send(message_id=message_id)


@shared_task(queue="default", acks_late=True, ignore_result=True)
def dispatch_due() -> None:
    """Beat runs this every second or two (SYSTEM_PERIODIC_TASKS)."""
    from transactional.services import transactional_dispatch_due

    transactional_dispatch_due()
