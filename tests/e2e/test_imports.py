"""A large CSV import through the real engine (docs/decisions/019): the imports worker takes it in chunks
while beat, the default worker and the transactional worker keep the clock; a killed imports worker is
resumed by the reaper from its checkpoint.

E2E_IMPORT_ROWS sets the size of the big import (default 1,000,000: a 28 MB file, under the API's 32 MiB)."""

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection

from audience.models import Contact, ContactImport
from audience.services import contact_import_start
from tests.e2e.conftest import wait_for
from tests.factories import SendingDomainFactory
from transactional.models import TransactionalMessage

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IMPORT_ROWS = int(os.environ.get("E2E_IMPORT_ROWS", "1000000"))
# The pool child's RSS, as /proc reports it: an idle Django + Celery process is ~105 MB (README,
# Performance); the import may add a chunk's worth, never the file's.
RSS_BOUND_BYTES = 200 * 2**20


def _write_csv(path: Path, rows: int) -> Path:
    with path.open("w") as out:
        out.write("email,first_name,last_name\n")
        for start in range(0, rows, 10_000):
            out.write("".join(f"c{i}@example.org,Ann,Lee\n" for i in range(start, min(rows, start + 10_000))))
    return path


def _start_import(workspace, path: Path) -> ContactImport:
    with path.open("rb") as upload:
        return contact_import_start(workspace=workspace, filename=path.name, fileobj=upload)


def _rss_of_group(pgid: int) -> dict[int, int]:
    """RSS in bytes of every process in a process group (a celery worker and its pool children)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            if int(fields[2]) != pgid:  # field 5 of stat, the process group
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found[int(entry.name)] = int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue  # the process ended while we looked
    return found


class RssSampler:
    """Samples the imports worker's largest process every `every` seconds in a thread, with the import's
    progress at that moment."""

    def __init__(self, process, import_id, every: float = 0.5):
        self.process = process
        self.import_id = import_id
        self.every = every
        self.samples: list[tuple[float, int, int]] = []  # (time, processed_rows, max RSS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                rss = _rss_of_group(self.process.popen.pid)
                processed = ContactImport.objects.filter(pk=self.import_id).values_list("processed_rows", flat=True)
                self.samples.append((time.time(), processed[0], max(rss.values(), default=0)))
        finally:
            connection.close()

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def _schedule_message(api, at: datetime) -> str:
    response = api.post(
        "/api/v1/transactional?priority=high",
        {
            "from": {"email": "alerts@mail.example.com"},
            "to": [{"email": "reset@example.org"}],
            "subject": "Reset your password",
            "text": "Use this link to reset your password.",
            "scheduled_at": at.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["message_id"]


def _assert_every_row_imported_once(contact_import: ContactImport, rows: int) -> None:
    contact_import.refresh_from_db()
    assert contact_import.status == ContactImport.Status.COMPLETED, contact_import.failure_reason
    # A row read twice would have found its contact and counted as an update.
    assert (contact_import.processed_rows, contact_import.created_count, contact_import.updated_count) == (
        rows,
        rows,
        0,
    )
    assert Contact.objects.filter(workspace=contact_import.workspace).count() == rows


def test_a_big_import_runs_in_constant_memory_while_a_scheduled_message_goes_out_on_time(
    engine_factory, sink, api, workspace, tmp_path
):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    path = _write_csv(tmp_path / "contacts.csv", IMPORT_ROWS)
    engine = engine_factory().start(bulk=False, imports=True, transactional=True)
    engine.wait_until_ready("default", "imports", "transactional")

    contact_import = _start_import(workspace, path)
    started = time.time()
    due = datetime.now(UTC) + timedelta(seconds=20)
    message_id = _schedule_message(api, due)

    with RssSampler(engine.imports, contact_import.id) as sampler:
        wait_for(lambda: sink.messages, timeout=60, what="the scheduled message at the sink")
        arrived = sink.handler.arrived_at[0]
        wait_for(
            lambda: ContactImport.objects.filter(pk=contact_import.pk, status__in=["completed", "failed"]).exists(),
            timeout=300,
            what="the import to end",
            every=1,
        )

    contact_import.refresh_from_db()
    lag = arrived - due.timestamp()
    seconds = contact_import.finished_at.timestamp() - started
    peak = max(rss for _, _, rss in sampler.samples)
    early = [rss for _, processed, rss in sampler.samples if 0 < processed <= IMPORT_ROWS // 10]
    print(
        f"\n{IMPORT_ROWS} rows in {seconds:.1f} s ({IMPORT_ROWS / seconds:,.0f} rows/s); message lag {lag:+.3f} s; "
        f"imports worker RSS first tenth {max(early, default=0) / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB "
        f"({len(sampler.samples)} samples)"
    )

    [received] = sink.messages
    assert [r.lower() for r in received.rcpt_tos] == ["reset@example.org"]
    assert TransactionalMessage.objects.get(id=message_id).status == "sent"
    assert -0.5 <= lag <= 2.0, f"the message was handed to SMTP {lag:+.3f} s from its due time"
    assert arrived < contact_import.finished_at.timestamp(), "the import had ended before the message was due"
    _assert_every_row_imported_once(contact_import, IMPORT_ROWS)
    assert peak < RSS_BOUND_BYTES, f"imports worker peaked at {peak / 2**20:.1f} MiB"
    # Flat, not merely bounded: the last nine tenths of the file add no more than a few MiB.
    assert early and peak - max(early) < 16 * 2**20, (max(early), peak)


def test_a_killed_imports_worker_is_resumed_from_its_checkpoint(engine_factory, sink, workspace, tmp_path):
    rows = 100_000
    path = _write_csv(tmp_path / "contacts.csv", rows)
    engine = engine_factory().start(bulk=False, imports=True)
    engine.wait_until_ready("default", "imports")

    contact_import = _start_import(workspace, path)
    wait_for(
        lambda: ContactImport.objects.get(pk=contact_import.pk).processed_rows >= 20_000,
        timeout=60,
        what="a fifth of the import",
    )
    engine.imports.kill()  # SIGKILL mid-import: its chunk rolls back, its task is lost until the visibility timeout
    contact_import.refresh_from_db()
    assert contact_import.status == ContactImport.Status.PROCESSING
    engine.imports.start()

    wait_for(
        lambda: ContactImport.objects.get(pk=contact_import.pk).status != ContactImport.Status.PROCESSING,
        timeout=90,
        what="the reaper to resume the import and the import to end",
        every=0.5,
    )
    _assert_every_row_imported_once(contact_import, rows)
    assert contact_import.attempts == 0  # reset by the progress after the reaper's re-enqueue
