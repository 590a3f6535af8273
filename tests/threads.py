"""Threads for concurrency tests that cannot hide a failure.

An exception in a plain threading.Thread ends that thread with a traceback on stderr (pytest makes it a
warning) and the test goes on, often to pass. Tests start their threads through these helpers instead:
the first exception a thread raised is raised again in the test, and a thread still running at the
timeout fails the test too. Each thread works on its own database connections (Django's are per thread),
closed when it ends.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

TIMEOUT = 30.0


class _Worker:
    def __init__(self, call: Callable[[], Any], *, name: str, failures: list, start: threading.Barrier | None):
        self.call = call
        self.start = start
        self.failures = failures  # shared by the workers of one run, in the order the exceptions happened
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            if self.start is not None:
                self.start.wait()
            self.result = self.call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which raises it
            self.failures.append((self.thread.name, exc))
        finally:
            try:
                connections.close_all()
            except BaseException as exc:  # noqa: BLE001
                self.failures.append((self.thread.name, exc))


def _join(workers: list[_Worker], *, timeout: float) -> None:
    """Wait for the workers; raise the first exception any of them raised, or fail if one still runs."""
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.thread.join(max(0.0, deadline - time.monotonic()))
    running = [w.thread.name for w in workers if w.thread.is_alive()]
    failures = list(workers[0].failures) if workers else []
    if failures:
        name, first = failures[0]
        first.add_note(f"(raised in thread {name!r})")
        for other_name, other in failures[1:]:
            first.add_note(f"thread {other_name!r} raised too: {type(other).__name__}: {other}")
        if running:
            first.add_note(f"still running after {timeout}s: {running}")
        raise first
    if running:
        raise AssertionError(f"thread(s) still running after {timeout}s: {running}")


def run_threads(*calls: Callable[[], Any], timeout: float = TIMEOUT) -> list:
    """Run each call in its own thread, all released at the same instant, and wait for them all.

    Returns what the calls returned, in order. If any thread raised, the first exception raised is raised
    here (the others are added to it as notes); if a thread is still running after `timeout` seconds, the
    test fails. An outcome that is expected (an ApplicationError, say) is for the call to catch and return.
    """
    failures: list = []
    start = threading.Barrier(len(calls), timeout=timeout)
    workers = [
        _Worker(call, name=f"test-thread-{i}", failures=failures, start=start) for i, call in enumerate(calls)
    ]
    for worker in workers:
        worker.thread.start()
    _join(workers, timeout=timeout)
    return [worker.result for worker in workers]


@contextmanager
def in_background(
    call: Callable[[], Any], *, stop: Callable[[], Any] | None = None, timeout: float = TIMEOUT
) -> Iterator[None]:
    """Run `call` in a thread while the with-block runs. On leaving the block, `stop()` is called (to
    release the thread), the thread is waited for, and what it raised is raised here: a failure of the
    thread beats a failure of the block, which it usually explains (the block's is kept as __context__)."""
    failures: list = []
    worker = _Worker(call, name="test-background-thread", failures=failures, start=None)
    worker.thread.start()
    try:
        yield
    finally:
        if stop is not None:
            stop()
        _join([worker], timeout=timeout)
