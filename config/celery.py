"""The Celery app (`celery -A config ...`). Configuration lives in Django settings under CELERY_*."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_shutdown
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")

# Five queues, each served by its own workers (docs/architecture.md#delivery-engine): a bulk campaign never delays a
# password reset because tx_high has workers that never take bulk work, and a CSV import never delays the clock's
# ticks on `default` because it runs on `imports` (docs/decisions/019).
app.conf.task_queues = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in ("tx_high", "tx_low", "bulk", "default", "imports")
)
app.conf.task_default_queue = "default"
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"
app.autodiscover_tasks()


@worker_process_shutdown.connect
def _prefork_child_exited(pid=None, **kwargs) -> None:
    from common.metrics import process_exited

    process_exited(pid or os.getpid())


@task_prerun.connect
def _bind_log_ids(task=None, args=None, kwargs=None, **extra) -> None:
    from common.logcontext import bind_task

    bind_task(task, args, kwargs)


@task_postrun.connect
def _unbind_log_ids(**extra) -> None:
    from common.logcontext import unbind_task

    unbind_task()
