"""The ids a log line is about (campaign, run, delivery, message...), added to every record logged while
they are bound, so a JSON log line in production can be found by the object it concerns
(docs/operations.md#logs). Celery tasks bind their own `*_id` / `*_ids` arguments (config/celery.py)."""

import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ids: ContextVar[dict[str, str] | None] = ContextVar("mailsched_log_ids", default=None)
MAX_IDS_SHOWN = 20


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        shown = ",".join(map(str, value[:MAX_IDS_SHOWN]))
        return shown + (f",... ({len(value)})" if len(value) > MAX_IDS_SHOWN else "")
    return str(value)


@contextmanager
def log_ids(**ids) -> Iterator[None]:
    token = _ids.set({**(_ids.get() or {}), **{k: _text(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _ids.reset(token)


class LogIdsFilter(logging.Filter):
    """Puts the bound ids on the record (as `extra=` would), without overriding what a call passed."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_ids.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def task_ids(task, args, kwargs) -> dict:
    """The arguments of a task call whose names end in _id or _ids (tasks take ids, never objects)."""
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {}))
    except TypeError:
        return {}
    return {name: value for name, value in bound.arguments.items() if name.endswith(("_id", "_ids"))}


def bind_task(task, args, kwargs) -> None:
    _ids.set({"task": task.name, **{k: _text(v) for k, v in task_ids(task, args, kwargs).items()}})


def unbind_task() -> None:
    _ids.set(None)
