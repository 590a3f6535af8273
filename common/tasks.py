import time

from celery import shared_task
from django.conf import settings

HEARTBEAT_KEY = "mailsched:heartbeat"


@shared_task(queue="default", ignore_result=True)
def heartbeat() -> None:
    """Beat schedules this every few seconds and a default-queue worker runs it; its timestamp in Redis
    tells ops (via /readyz) that beat and the workers are alive, not just the web process."""
    import redis

    redis.Redis.from_url(settings.REDIS_URL).set(HEARTBEAT_KEY, f"{time.time():.3f}", ex=3600)


def heartbeat_age_seconds(client=None) -> float | None:
    """Seconds since a worker last ran `heartbeat` (None: never, or over an hour ago)."""
    import redis

    client = client or redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    value = client.get(HEARTBEAT_KEY)
    return round(time.time() - float(value), 1) if value else None
