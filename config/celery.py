"""The Celery app (`celery -A config ...`). Configuration lives in Django settings under CELERY_*."""

import os

from celery import Celery
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
