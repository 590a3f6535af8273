"""gunicorn settings the Procfiles load (`-c python:config.gunicorn`); command-line flags still win.

Threaded workers, one process per core by default (docs/decisions/110): an API request spends part of its
time waiting for PostgreSQL and Redis, and a sync worker's core idles through those waits, while more sync
processes than cores only fight over the cores. `WEB_CONCURRENCY` (processes) and `WEB_THREADS` (threads
each) override the defaults; each thread keeps its own database connection (CONN_MAX_AGE), so a machine
holds up to processes x threads connections to PostgreSQL."""

import os

worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 2)
threads = int(os.environ.get("WEB_THREADS", "4"))


def child_exit(server, worker) -> None:
    # prometheus-client multiprocess mode: a dead worker's live gauges leave the sum (docs/operations.md).
    from common.metrics import process_exited

    process_exited(worker.pid)
