"""The aggregator counts every event exactly once, also while other transactions are still writing events
whose ids are below ones it has already read (PostgreSQL commits ids out of order)."""

import random
import threading

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count

from delivery.models import Event
from reports import selectors
from reports.models import PendingEvent, RunReport
from reports.services import reports_aggregate
from tests.factories import CampaignRunFactory, EventFactory, WorkspaceFactory

# SQLite writers hold the one write lock from their first id to their commit: ids never commit out of order.
ONLY_POSTGRES = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="ids commit out of order only on PostgreSQL"
)


def _event(run, type="opened", email="a@example.org", **data):
    return Event(workspace_id=run.workspace_id, type=type, occurred_at=run.due_at, email=email,
                 campaign_id=run.campaign_id, run_id=run.pk, data=data)  # fmt: skip


@pytest.mark.django_db
def test_running_it_twice_counts_nothing_twice(workspace):
    run = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace)
    Event.objects.bulk_create([_event(run, "sent"), _event(run), _event(run)])
    first, second = reports_aggregate(), reports_aggregate()
    assert (first.events, second.events) == (3, 0)
    assert RunReport.objects.values_list("sent", "opens", "unique_opens").get() == (1, 2, 1)


@pytest.mark.django_db
def test_a_backlog_is_counted_in_batches_across_ticks(workspace):
    run = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace)
    Event.objects.bulk_create([_event(run, email=f"r{i}@example.org") for i in range(25)])
    result = reports_aggregate(batch_size=10)
    assert (result.events, result.ticks) == (25, 3)
    assert RunReport.objects.get().unique_opens == 25


@pytest.mark.django_db
def test_events_without_a_run_are_not_counted(workspace):
    EventFactory(workspace=workspace, type="opened", batch_id="8d8ac610-566d-4ef0-9c22-186b0f3fdd3c")
    EventFactory(workspace=workspace, type="campaign.scheduled", campaign_id="8d8ac610-566d-4ef0-9c22-186b0f3fdd3c")
    assert reports_aggregate().events == 2
    assert not RunReport.objects.exists()


def _in_thread(target):
    box = {}

    def run():
        try:
            box["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    return thread, box


@ONLY_POSTGRES
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_after_a_later_id_was_counted_is_still_counted():
    run = CampaignRunFactory()
    started, release = threading.Event(), threading.Event()

    def slow_writer():
        with transaction.atomic():
            box["id"] = Event.objects.bulk_create([_event(run, email="slow@example.org")])[0].pk  # the smaller id
            started.set()
            release.wait(10)

    thread, box = _in_thread(slow_writer)
    thread.start()
    started.wait(10)
    Event.objects.bulk_create([_event(run, email="fast@example.org")])  # larger id, committed first
    assert reports_aggregate().events == 1
    # Held back while its writer runs (with any older unused ids: nothing proves them unused while it runs).
    assert box["id"] in set(PendingEvent.objects.values_list("event_id", flat=True))
    release.set()
    thread.join(10)
    assert "error" not in box
    assert reports_aggregate().events == 1
    assert RunReport.objects.get().unique_opens == 2
    assert not PendingEvent.objects.exists()


@ONLY_POSTGRES
@pytest.mark.django_db(transaction=True)
def test_an_id_of_a_rolled_back_write_is_forgotten_once_no_older_transaction_runs():
    run = CampaignRunFactory()
    started, release = threading.Event(), threading.Event()

    def doomed_writer():
        with pytest.raises(RuntimeError), transaction.atomic():
            box["id"] = Event.objects.bulk_create([_event(run, email="never@example.org")])[0].pk
            started.set()
            release.wait(10)
            raise RuntimeError("rolled back")

    thread, box = _in_thread(doomed_writer)
    thread.start()
    started.wait(10)
    Event.objects.bulk_create([_event(run, email="kept@example.org")])
    reports_aggregate()
    assert box["id"] in set(PendingEvent.objects.values_list("event_id", flat=True))
    release.set()
    thread.join(10)
    reports_aggregate()
    assert not PendingEvent.objects.exists()
    assert RunReport.objects.get().opens == 1


FIGURES = ("sent", "opens", "clicks", "unique_opens", "unique_clicks")


def _expected(run_ids) -> dict:
    """The figures recomputed from the whole event table, the slow way."""
    events = Event.objects.filter(run_id__in=run_ids)
    by_type = dict(events.values_list("type").annotate(n=Count("id")))
    return {
        "sent": by_type.get("sent", 0),
        "opens": by_type.get("opened", 0),
        "clicks": by_type.get("clicked", 0),
        "unique_opens": events.filter(type__in=["opened", "clicked"]).values("run_id", "email").distinct().count(),
        "unique_clicks": events.filter(type="clicked").values("run_id", "email").distinct().count(),
    }


# On SQLite, Django's test database is in memory with a shared cache, where a second writer fails at once
# ("table is locked") instead of waiting as on the file database with its busy timeout.
@ONLY_POSTGRES
@pytest.mark.django_db(transaction=True)
def test_figures_match_a_full_recount_after_concurrent_writers_and_aggregators():
    workspace = WorkspaceFactory()
    runs = [CampaignRunFactory(workspace=workspace, campaign__workspace=workspace) for _ in range(2)]
    writers_done = threading.Event()

    def writer(seed: int):
        rng = random.Random(seed)
        for _ in range(40):
            with transaction.atomic():
                batch = [
                    _event(rng.choice(runs), rng.choice(["sent", "opened", "opened", "clicked"]),
                           email=f"r{rng.randrange(60)}@example.org", url=f"https://x.example/{rng.randrange(3)}")
                    for _ in range(rng.randrange(1, 30))
                ]  # fmt: skip
                # Two statements: between them this transaction holds ids that others may commit past.
                Event.objects.bulk_create(batch[: len(batch) // 2])
                Event.objects.bulk_create(batch[len(batch) // 2 :])

    passes = threading.Condition()
    passes.count = 0

    def holder():
        # Keeps a written event uncommitted until an aggregator has read past it, every round: the case an
        # id cursor alone gets wrong.
        for i in range(15):
            with transaction.atomic():
                Event.objects.bulk_create([_event(runs[0], "opened", email=f"held{i}@example.org")])
                Event.objects.bulk_create([_event(runs[0], "sent", email=f"held{i}@example.org")])
                later = [_event(runs[1], "sent", email=f"past{i}@example.org")]
                past, _ = _in_thread(lambda later=later: Event.objects.bulk_create(later))
                past.start()
                past.join(10)  # a larger id, committed while this one is not
                with passes:
                    target = passes.count + 2
                    passes.wait_for(lambda target=target: passes.count >= target, timeout=10)

    def aggregator():
        while not writers_done.is_set():
            if reports_aggregate(batch_size=50).busy:
                continue
            with passes:
                passes.count += 1
                passes.notify_all()

    writers = [_in_thread(lambda seed=seed: writer(seed)) for seed in range(3)] + [_in_thread(holder)]
    aggregators = [_in_thread(aggregator) for _ in range(2)]
    for thread, _ in writers + aggregators:
        thread.start()
    for thread, _ in writers:
        thread.join(60)
    writers_done.set()
    for thread, _ in aggregators:
        thread.join(60)
    assert [box["error"] for _, box in writers + aggregators if "error" in box] == []
    reports_aggregate()

    counted = selectors.report_basic(workspace=workspace, campaign_id=runs[0].campaign_id)
    for run in runs[1:]:
        more = selectors.report_basic(workspace=workspace, campaign_id=run.campaign_id)
        counted = {key: counted[key] + more[key] for key in FIGURES}
    assert {key: counted[key] for key in _expected([r.pk for r in runs])} == _expected([r.pk for r in runs])
    assert not PendingEvent.objects.exists()
