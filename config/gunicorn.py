"""gunicorn settings the Procfiles load (`-c python:config.gunicorn`); command-line flags still win."""


def child_exit(server, worker) -> None:
    # prometheus-client multiprocess mode: a dead worker's live gauges leave the sum (docs/operations.md).
    from common.metrics import process_exited

    process_exited(worker.pid)
