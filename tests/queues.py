"""The tasks waiting on a Celery queue in the test Redis, read the way a worker reads them.

`send_task` ignores CELERY_TASK_ALWAYS_EAGER, so a test that wants to see what a service enqueued reads it
back from the real broker, and `run_queued` plays the worker: it takes each message in order and runs its
task in this process with the message's task id (what `self.request.id` is in a worker)."""

import base64
import importlib
import json
from dataclasses import dataclass

import redis
from django.conf import settings

# kombu's Redis transport keeps each priority step of a queue in its own list (docs/decisions/011).
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


@dataclass(frozen=True)
class QueuedTask:
    name: str
    id: str
    args: list
    kwargs: dict
    timelimit: list  # [hard, soft] as the message carries them; None means the worker's own


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def _decode(raw: bytes) -> QueuedTask:
    message = json.loads(raw)
    body = message["body"]
    if message["properties"].get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args, kwargs, _ = json.loads(body)
    headers = message["headers"]
    return QueuedTask(
        name=headers["task"], id=headers["id"], args=args, kwargs=kwargs, timelimit=list(headers["timelimit"])
    )


def queued(queue: str) -> list[QueuedTask]:
    """Waiting tasks, oldest first (kombu pushes on the left and pops on the right)."""
    client = _client()
    return [_decode(raw) for suffix in _PRIORITY_SUFFIXES for raw in reversed(client.lrange(queue + suffix, 0, -1))]


def purge(queue: str) -> None:
    client = _client()
    for suffix in _PRIORITY_SUFFIXES:
        client.delete(queue + suffix)


def run_next(queue: str) -> QueuedTask | None:
    """Take the oldest waiting task and run it here with its own task id; None when the queue is empty."""
    client = _client()
    raw = next((r for r in (client.rpop(queue + s) for s in _PRIORITY_SUFFIXES) if r is not None), None)
    if raw is None:
        return None
    task = _decode(raw)
    module, _, name = task.name.rpartition(".")
    runner = getattr(importlib.import_module(module), name)
    runner.apply(args=task.args, kwargs=task.kwargs, task_id=task.id, throw=True)
    return task


def run_queued(queue: str, *, limit: int = 1000) -> list[QueuedTask]:
    """Run the waiting tasks in order, and those they enqueue, until the queue is empty; returns them."""
    ran: list[QueuedTask] = []
    while len(ran) < limit:
        task = run_next(queue)
        if task is None:
            return ran
        ran.append(task)
    raise AssertionError(f"{queue} still had tasks after {limit} runs")
