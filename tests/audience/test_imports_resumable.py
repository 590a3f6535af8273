"""CSV imports in chunks with checkpoints (docs/decisions/019): tasks that hand on the rest, a reaper that
resumes an import whose worker died, and memory that does not grow with the file.

The tasks are read back from the real Redis and run here as a worker would run them (tests/queues.py)."""

import gc
import io
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction

from audience.importfile import parts_write
from audience.models import Contact, ContactImport, ContactImportPart, Label
from audience.services import contact_import_create, contact_import_process, contact_import_reap, contact_import_start
from tests import queues
from tests.threads import in_background, run_threads

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _csv(rows: int, *, labels: str = "news") -> bytes:
    lines = "".join(f"p{i}@example.org,Ann{i},Lee,{labels}\n" for i in range(rows))
    return ("email,first_name,last_name,labels\n" + lines).encode()


@pytest.fixture
def small_chunks(settings):
    settings.CONTACT_IMPORT_CHUNK_SIZE = 100
    settings.CONTACT_IMPORT_TASK_SECONDS = 0  # one chunk per task, then the rest as a new task
    settings.CONTACT_IMPORT_STALLED_SECONDS = 60
    settings.CONTACT_IMPORT_MAX_ATTEMPTS = 2
    return settings


@pytest.fixture
def start(workspace, django_capture_on_commit_callbacks):
    """Upload through the API's service; its task is on the imports queue when this returns."""

    def upload(payload: bytes) -> ContactImport:
        with django_capture_on_commit_callbacks(execute=True):
            return contact_import_start(workspace=workspace, filename="c.csv", fileobj=io.BytesIO(payload))

    return upload


@pytest.fixture
def reap(django_capture_on_commit_callbacks):
    def run(at: datetime):
        with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=True):
            return contact_import_reap()

    return run


def _state(contact_import: ContactImport) -> ContactImport:
    contact_import.refresh_from_db()
    return contact_import


def _assert_every_row_imported_once(contact_import: ContactImport, rows: int) -> None:
    result = _state(contact_import)
    assert result.status == ContactImport.Status.COMPLETED, result.failure_reason
    # A row read twice would have found its contact already there and counted as an update.
    assert (result.processed_rows, result.created_count, result.updated_count, result.error_count) == (
        rows,
        rows,
        0,
        0,
    )
    contacts = Contact.objects.filter(workspace=result.workspace)
    assert sorted(contacts.values_list("email", flat=True)) == sorted(f"p{i}@example.org" for i in range(rows))
    news = Label.objects.get(workspace=result.workspace, name="news")
    assert Contact.labels.through.objects.filter(label=news).count() == rows
    assert not ContactImportPart.objects.filter(contact_import=result).exists()


# --- chunks and tasks -------------------------------------------------------------------------------------


def test_each_chunk_commits_with_its_checkpoint_and_progress(workspace, small_chunks, start):
    contact_import = start(_csv(250))
    with time_machine.travel(T0, tick=False):
        queues.run_next("imports")

    state = _state(contact_import)
    assert state.status == ContactImport.Status.PROCESSING
    assert (state.processed_rows, state.total_rows, state.created_count) == (100, 250, 100)
    assert state.checkpoint_line == 102  # the header is line 1, the first chunk lines 2-101
    assert state.checkpoint_offset == len(_csv(100))
    assert state.progress_at == T0
    assert Contact.objects.filter(workspace=workspace).count() == 100


def test_a_task_hands_the_rest_to_a_new_task_on_the_imports_queue(workspace, small_chunks, start):
    contact_import = start(_csv(250))
    first = queues.run_next("imports")

    [successor] = queues.queued("imports")
    assert successor.name == "audience.tasks.contact_import_process"
    assert successor.args == [str(contact_import.id)]
    assert successor.id != first.id
    assert str(_state(contact_import).task_id) == successor.id


def test_import_tasks_carry_no_time_limits_so_the_imports_worker_applies_its_own(
    workspace, small_chunks, start, reap
):
    # send_task would otherwise copy the sender's limits: the reaper's, from the default worker.
    start(_csv(250))
    queues.run_next("imports")
    queues.purge("imports")
    reap(datetime.now(UTC) + timedelta(seconds=61))
    start(_csv(10))
    assert [task.timelimit for task in queues.queued("imports")] == [[None, None], [None, None]]


def test_chained_tasks_import_every_row_once(workspace, small_chunks, start):
    contact_import = start(_csv(250))
    ran = queues.run_queued("imports")
    assert len(ran) == 3
    _assert_every_row_imported_once(contact_import, 250)


def test_a_task_processes_chunks_until_its_time_is_up(workspace, settings, start):
    settings.CONTACT_IMPORT_CHUNK_SIZE = 100
    settings.CONTACT_IMPORT_TASK_SECONDS = 3600
    contact_import = start(_csv(250))
    assert len(queues.run_queued("imports")) == 1
    _assert_every_row_imported_once(contact_import, 250)


def test_the_last_chunk_completes_the_import_and_deletes_its_file(workspace, small_chunks, start):
    contact_import = start(_csv(100))
    assert ContactImportPart.objects.filter(contact_import=contact_import).exists()
    queues.run_queued("imports")
    state = _state(contact_import)
    assert state.status == ContactImport.Status.COMPLETED
    assert state.task_id is None
    assert not ContactImportPart.objects.filter(contact_import=contact_import).exists()


def test_a_chunk_read_again_duplicates_no_contact_and_no_label(workspace, small_chunks, start):
    contact_import = start(_csv(250))
    queues.run_next("imports")
    after_first = _state(contact_import)
    checkpoint = (after_first.checkpoint_offset, after_first.checkpoint_line)
    queues.run_next("imports")
    # As if the second chunk's commit had been lost after its rows were written: the checkpoint goes back.
    ContactImport.objects.filter(pk=contact_import.pk).update(
        checkpoint_offset=checkpoint[0], checkpoint_line=checkpoint[1]
    )
    queues.run_queued("imports")

    assert Contact.objects.filter(workspace=workspace).count() == 250
    links = Contact.labels.through.objects.filter(contact__workspace=workspace)
    assert links.count() == 250
    assert Label.objects.filter(workspace=workspace).count() == 1
    assert _state(contact_import).updated_count == 100  # the chunk read twice, counted as updates


def test_a_superseded_task_does_nothing(workspace, small_chunks, start, reap):
    contact_import = start(_csv(250))
    with time_machine.travel(T0, tick=False):
        queues.run_next("imports")
    [stale] = queues.queued("imports")
    queues.purge("imports")
    assert reap(T0 + timedelta(seconds=61)).resumed == 1

    contact_import_process(import_id=contact_import.id, task_id=stale.id)  # redelivered after the reap
    assert _state(contact_import).processed_rows == 100


def test_a_finished_import_is_not_processed_again(workspace, small_chunks, start):
    contact_import = start(_csv(50))
    [task] = queues.run_queued("imports")
    ContactImport.objects.filter(pk=contact_import.pk).update(created_count=0)
    contact_import_process(import_id=contact_import.id, task_id=task.id)
    assert _state(contact_import).created_count == 0


def test_an_unreadable_stored_file_fails_the_import_with_the_reason(workspace, small_chunks):
    # An import stored before the checkpoints (migration 0003) has no header yet: the first chunk reads it.
    contact_import = ContactImport.objects.create(workspace=workspace, filename="old.csv")
    parts_write(import_id=contact_import.id, fileobj=io.BytesIO(b"name\nAna\n"), limit=100)
    contact_import_process(import_id=contact_import.id)
    state = _state(contact_import)
    assert state.status == ContactImport.Status.FAILED
    assert "no 'email' column" in state.failure_reason
    assert not ContactImportPart.objects.filter(contact_import=contact_import).exists()


@pytest.mark.django_db(transaction=True)
def test_a_lost_database_connection_leaves_the_import_at_its_checkpoint_for_the_reaper(workspace, small_chunks):
    contact_import = contact_import_create(workspace=workspace, filename="c.csv", fileobj=io.BytesIO(_csv(150)))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    def terminate():
        with connection.cursor() as cursor:  # this thread's own connection
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    run_threads(terminate)
    assert contact_import_process(import_id=contact_import.id) is False
    connection.close()

    state = _state(contact_import)
    assert (state.status, state.processed_rows, state.failure_reason) == (ContactImport.Status.PENDING, 0, "")


# --- the reaper -------------------------------------------------------------------------------------------


def test_the_reaper_resumes_an_import_whose_worker_died_from_its_checkpoint(
    workspace, small_chunks, start, reap
):
    contact_import = start(_csv(1000))
    with time_machine.travel(T0, tick=False):
        for _ in range(3):
            queues.run_next("imports")
    # The worker dies on the fourth chunk: that chunk's transaction rolled back and its task is gone.
    queues.purge("imports")
    assert _state(contact_import).processed_rows == 300

    assert reap(T0 + timedelta(seconds=59)).resumed == 0  # not stalled yet
    assert reap(T0 + timedelta(seconds=61)).resumed == 1
    assert _state(contact_import).attempts == 1
    queues.run_queued("imports")

    _assert_every_row_imported_once(contact_import, 1000)
    assert _state(contact_import).attempts == 0


def test_the_reaper_enqueues_again_a_pending_import_whose_task_was_lost(workspace, small_chunks, start, reap):
    with time_machine.travel(T0, tick=False):
        contact_import = start(_csv(150))
    queues.purge("imports")  # Redis flushed before a worker took the task

    assert reap(T0 + timedelta(seconds=61)).resumed == 1
    queues.run_queued("imports")
    _assert_every_row_imported_once(contact_import, 150)


def test_the_reaper_gives_up_after_the_attempts_and_says_why(workspace, small_chunks, start, reap):
    contact_import = start(_csv(1000))
    with time_machine.travel(T0, tick=False):
        queues.run_next("imports")
    for attempt in (1, 2):
        queues.purge("imports")  # each resumed task dies as well
        assert reap(T0 + timedelta(seconds=61 * attempt)).resumed == 1
        assert _state(contact_import).attempts == attempt

    assert reap(T0 + timedelta(seconds=61 * 3)).failed == 1

    state = _state(contact_import)
    assert state.status == ContactImport.Status.FAILED
    assert state.failure_reason.startswith("No progress for 60 s, 3 times in a row")
    assert "stopped at line 102 after 100 of 1000 rows" in state.failure_reason
    assert state.finished_at == T0 + timedelta(seconds=183)
    assert Contact.objects.filter(workspace=workspace).count() == 100  # what was imported stays
    assert not ContactImportPart.objects.filter(contact_import=contact_import).exists()
    assert reap(T0 + timedelta(seconds=61 * 4)) == type(reap(T0))(resumed=0, failed=0)


def test_progress_between_stalls_starts_the_attempts_again(workspace, small_chunks, start, reap):
    with time_machine.travel(T0, tick=False):
        contact_import = start(_csv(1000))
    queues.purge("imports")
    reap(T0 + timedelta(seconds=61))
    reap(T0 + timedelta(seconds=122))
    assert _state(contact_import).attempts == 2
    with time_machine.travel(T0 + timedelta(seconds=130), tick=False):
        queues.run_next("imports")  # the first reap's task, superseded by the second's: does nothing
        assert _state(contact_import).processed_rows == 0
        queues.run_next("imports")
    assert (_state(contact_import).processed_rows, _state(contact_import).attempts) == (100, 0)
    queues.purge("imports")
    assert reap(T0 + timedelta(seconds=191)).resumed == 1


def test_the_reaper_leaves_finished_imports_alone(workspace, small_chunks, start, reap):
    start(_csv(50))
    queues.run_queued("imports")
    assert reap(datetime.now(UTC) + timedelta(days=1)) == type(reap(T0))(resumed=0, failed=0)
    assert queues.queued("imports") == []


@pytest.mark.django_db(transaction=True)
def test_an_import_a_worker_holds_is_skipped_by_the_reaper_and_by_a_twin(workspace, small_chunks):
    contact_import = contact_import_create(workspace=workspace, filename="c.csv", fileobj=io.BytesIO(_csv(150)))
    ContactImport.objects.filter(pk=contact_import.pk).update(progress_at=T0)
    locked, release = threading.Event(), threading.Event()

    def worker_on_it():
        with transaction.atomic():
            ContactImport.objects.select_for_update().get(pk=contact_import.pk)
            locked.set()
            release.wait(10)

    with in_background(worker_on_it, stop=release.set):
        assert locked.wait(10)
        assert contact_import_reap().resumed == 0
        assert contact_import_process(import_id=contact_import.id) is False

    state = _state(contact_import)
    assert (state.status, state.processed_rows, state.attempts) == (ContactImport.Status.PENDING, 0, 0)
    assert contact_import_reap().resumed == 1  # once the lock is gone, it is stalled like any other
    queues.purge("imports")


# --- memory -----------------------------------------------------------------------------------------------


def _peak_bytes_processing(workspace, rows: int) -> int:
    # Every byte of the file is read, parsed and validated; the addresses repeat (a hundred of them), so the
    # database's share of the work stays small and the test quick even under tracemalloc.
    payload = b"email\n" + b"".join(b"m%d@example.org\n" % (i % 100) for i in range(rows))
    contact_import = contact_import_create(workspace=workspace, filename="big.csv", fileobj=io.BytesIO(payload))
    del payload
    gc.collect()
    tracemalloc.start()
    try:
        contact_import_process(import_id=contact_import.id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    state = _state(contact_import)
    assert (state.status, state.processed_rows) == (ContactImport.Status.COMPLETED, rows)
    return peak


def test_processing_memory_does_not_grow_with_the_file(workspace, other_workspace, settings):
    settings.CONTACT_IMPORT_CHUNK_SIZE = 2000
    small = _peak_bytes_processing(workspace, 20_000)  # a 0.4 MB file
    large = _peak_bytes_processing(other_workspace, 200_000)  # 3.7 MB
    # Bounded by a chunk and a part, not by the file: holding a tenth of the large file would already break it.
    assert large < small * 1.25, (small, large)
