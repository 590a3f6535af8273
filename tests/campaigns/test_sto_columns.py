"""The STO fan-out by columns on PostgreSQL (campaigns.selectors.campaign_recipient_chunks, RunPlanner.plan_chunk,
DeliveryWriter.stage_plan and insert_staged) against the row-by-row planner (RunPlanner.plan over ORM rows):
the same send time, reason code and reason text for every recipient, whatever the mix of histories, zones
and quiet hours."""

import random
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.db import connection, transaction

from audience.models import Contact, EngagementProfile
from audience.services import contact_delete
from campaigns.launching import run_fan_out
from campaigns.models import Campaign, CampaignRun
from campaigns.planning import RECIPIENT_COLUMNS, RunPlanner, SendPolicy, _quiet_intervals
from campaigns.selectors import _RECORD, _prefetched, campaign_recipient_id_chunks, campaign_recipients
from common.quiet_hours import QuietHours
from delivery import engine as delivery_engine
from delivery.models import Delivery
from delivery.services import DeliveryWriter, delivery_send_batch, engagement_import
from tests.factories import CampaignFactory, CampaignRunFactory, ContactFactory, LabelFactory, SendingDomainFactory
from tests.threads import run_threads

LAUNCH = datetime(2026, 6, 8, 6, 17, 23, tzinfo=UTC)  # a Monday, not on the hour


@pytest.fixture
def readers(workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    return LabelFactory(workspace=workspace, name="readers")


def history(contact, *, opens: int, clicks: int, hour: int) -> None:
    rows = [
        {
            "email": contact.email,
            "type": "opened",
            "occurred_at": (LAUNCH - timedelta(days=7 * (w + 1), hours=LAUNCH.hour - hour)).isoformat(),
        }
        for w in range(opens)
    ] + [
        {"email": contact.email, "type": "clicked", "occurred_at": (LAUNCH - timedelta(days=3 + w)).isoformat()}
        for w in range(clicks)
    ]
    if rows:
        engagement_import(workspace_id=contact.workspace_id, rows=rows, now=LAUNCH)


def sto_run(workspace, label, *, status=CampaignRun.Status.PENDING):
    """A sending STO campaign (24 h window) to `label` and its run due at LAUNCH."""
    campaign = CampaignFactory(
        workspace=workspace,
        status=Campaign.Status.SENDING,
        audience={"include_labels": [str(label.id)]},
        send_time_optimization={"window_hours": 24},
    )
    run = CampaignRunFactory(campaign=campaign, status=status, due_at=LAUNCH, occurrence_at=LAUNCH)
    return campaign, run


def mixed_audience(workspace, label, size=60):
    zones = ["America/New_York", "Asia/Kolkata", "Europe/London", "", "Not/AZone", "Australia/Adelaide"]
    rng = random.Random(5)
    contacts = []
    for i in range(size):
        contact = ContactFactory(workspace=workspace, labels=[label], timezone=zones[i % len(zones)])
        if i % 4:
            history(contact, opens=rng.randint(1, 12), clicks=rng.choice([0, 0, 2]), hour=rng.randint(0, 23))
        contacts.append(contact)
    # A profile row with empty vectors (a contact whose only events were machine opens) reads as none.
    EngagementProfile.objects.get_or_create(contact=contacts[0], defaults={"workspace": workspace})
    return contacts


def fan_out_and_reference(workspace, label, settings, **campaign_fields):
    campaign = CampaignFactory(
        workspace=workspace,
        status=Campaign.Status.SENDING,
        audience={"include_labels": [str(label.id)]},
        **campaign_fields,
    )
    run = CampaignRunFactory(campaign=campaign, status=CampaignRun.Status.PENDING, due_at=LAUNCH, occurrence_at=LAUNCH)
    policy = SendPolicy.for_campaign(campaign=campaign, launch_at=LAUNCH, occurrence=LAUNCH)
    planner = RunPlanner(policy=policy, workspace=workspace)
    recipients = campaign_recipients(workspace=workspace, campaign=campaign)
    planner.choose_holdout(campaign_recipient_id_chunks(recipients=recipients, size=5))
    rows = list(recipients.order_by("email").values_list(*RECIPIENT_COLUMNS))  # any order gives the same plan
    reference = {email: (send_at, code, reason) for _, email, send_at, code, reason in planner.plan(rows)}
    settings.DELIVERY_FANOUT_CHUNK_SIZE = 7  # several chunks, one of them short
    run_fan_out(run_id=run.id, now=LAUNCH)
    written = {d.email: (d.send_at, d.send_reason_code, d.send_reason) for d in Delivery.objects.filter(run=run)}
    return reference, written


def test_the_columnar_fan_out_writes_what_the_row_planner_plans(workspace, readers, settings):
    mixed_audience(workspace, readers)

    reference, written = fan_out_and_reference(
        workspace, readers, settings, send_time_optimization={"window_hours": 24, "holdout_percent": 10}
    )

    assert written == reference
    codes = {code for _, code, _ in written.values()}
    assert {"own_history", "audience_history", "holdout"} <= codes
    assert any(", 2 clicks, best" in reason for _, _, reason in written.values())


def test_the_columnar_fan_out_moves_out_of_quiet_hours_as_the_row_planner_does(workspace, readers, settings):
    mixed_audience(workspace, readers)

    reference, written = fan_out_and_reference(
        workspace,
        readers,
        settings,
        send_time_optimization={"window_hours": 24, "holdout_percent": 10},
        quiet_hours={"start": "12:30", "end": "23:45"},
        recipient_local_time=True,
    )

    assert written == reference
    quiet = QuietHours.from_dict({"start": "12:30", "end": "23:45"})
    zones = dict(Contact.objects.filter(workspace=workspace).values_list("email", "timezone"))
    moved = 0
    for email, (send_at, code, _) in written.items():
        tz = ZoneInfo(
            zones[email]
            if zones[email] in ("America/New_York", "Asia/Kolkata", "Europe/London", "Australia/Adelaide")
            else workspace.timezone
        )
        assert quiet.end_after(send_at, tz) is None, (email, send_at)
        if code == "quiet_hours":
            moved += 1
            assert send_at.astimezone(tz).strftime("%H:%M:%S") == "23:45:00"
    assert moved


def test_a_columnar_fan_out_run_again_after_a_crash_completes_without_duplicates(workspace, readers, settings):
    contacts = mixed_audience(workspace, readers, size=12)
    campaign, run = sto_run(workspace, readers, status=CampaignRun.Status.FANNING_OUT)
    for contact in contacts[:5]:  # what a worker killed after its commit, before the run's total, leaves
        Delivery.objects.create(
            workspace=workspace, run=run, campaign=campaign, contact=contact, email=contact.email, send_at=LAUNCH
        )

    result = run_fan_out(run_id=run.id, now=LAUNCH)

    assert (result.written, result.total) == (7, 12)
    assert Delivery.objects.filter(run=run).values("contact_id").distinct().count() == 12


def test_a_columnar_fan_out_cancelled_during_the_read_writes_no_delivery(workspace, readers, settings, monkeypatch):
    mixed_audience(workspace, readers, size=30)
    _, run = sto_run(workspace, readers)
    plan_chunk = RunPlanner.plan_chunk

    def cancel_after_the_first_chunk(self, chunk):
        CampaignRun.objects.filter(pk=run.pk).update(status=CampaignRun.Status.CANCELLED)
        return plan_chunk(self, chunk)

    monkeypatch.setattr(RunPlanner, "plan_chunk", cancel_after_the_first_chunk)
    settings.DELIVERY_FANOUT_CHUNK_SIZE = 7

    result = run_fan_out(run_id=run.id, now=LAUNCH)

    assert (result.status, result.total) == (CampaignRun.Status.CANCELLED, 0)
    assert not Delivery.objects.filter(run=run).exists()


@pytest.mark.django_db(transaction=True)
def test_a_contact_deleted_before_the_fan_out_commits_leaves_the_run_sending_and_is_skipped(
    workspace, readers, settings, monkeypatch
):
    # The database does not check delivery -> contact (docs/decisions/032): with the check, this deletion
    # either waited for the fan-out (and the fan-out for it) or failed the whole run at its commit.
    contacts = mixed_audience(workspace, readers, size=12)
    gone = contacts[3]
    _, run = sto_run(workspace, readers)
    insert_staged = DeliveryWriter.insert_staged

    def then_delete_a_contact_elsewhere(self):
        insert_staged(self)  # the rows are written, not yet committed

        def delete():
            with transaction.atomic():
                connection.cursor().execute("SET LOCAL lock_timeout = '5s'")
                contact_delete(workspace=workspace, instance=Contact.objects.get(pk=gone.pk))

        run_threads(delete)

    monkeypatch.setattr(DeliveryWriter, "insert_staged", then_delete_a_contact_elsewhere)
    monkeypatch.setattr(delivery_engine, "delivery_dispatch_run", lambda **kwargs: None)

    result = run_fan_out(run_id=run.id, now=LAUNCH)

    assert (result.status, result.total) == (CampaignRun.Status.SENDING, 12)
    orphan = Delivery.objects.get(run=run, email=gone.email)
    assert orphan.contact_id == gone.pk and not Contact.objects.filter(pk=gone.pk).exists()
    delivery_send_batch(delivery_ids=[orphan.id])
    orphan.refresh_from_db()
    assert (orphan.status, orphan.error) == ("skipped", "suppressed: contact deleted")


class _Cursor:
    """Stands in for psycopg's server-side cursor: `batches` of rows, then an error or the end."""

    def __init__(self, batches, error=None):
        self.batches, self.error, self.calls = list(batches), error, 0

    def fetchmany(self, size):
        self.calls += 1
        if self.batches:
            return self.batches.pop(0)
        if self.error:
            raise self.error
        return []


def _record_rows(n: int, zone: str = "Europe/London") -> list[tuple]:
    record = np.zeros(1, dtype=_RECORD)
    return [(record.tobytes(), zone)] * n


def test_the_prefetch_hands_the_fetch_error_to_the_caller():
    rows = _prefetched(_Cursor([_record_rows(3)], error=RuntimeError("connection lost")), size=3)
    assert len(next(rows)) == 3
    with pytest.raises(RuntimeError, match="connection lost"):
        next(rows)


def test_the_prefetch_thread_has_stopped_when_the_caller_stops_early():
    cursor = _Cursor([_record_rows(2) for _ in range(50)])
    rows = _prefetched(cursor, size=2)
    next(rows)
    rows.close()
    assert not [t for t in threading.enumerate() if t.name == "fan-out-prefetch"]
    assert cursor.calls < 50  # it stopped fetching, not read the rest


@pytest.mark.parametrize(
    "zone, start, end, window_start",
    [
        ("America/New_York", "21:00", "08:00", datetime(2026, 3, 7, 12, tzinfo=UTC)),  # spring forward inside
        ("America/New_York", "01:10", "01:50", datetime(2026, 10, 31, 12, tzinfo=UTC)),  # fall back repeats it
        ("Europe/Berlin", "02:30", "05:00", datetime(2026, 10, 24, 12, tzinfo=UTC)),  # quiet start in the repeat
        ("Europe/Berlin", "02:15", "02:45", datetime(2026, 3, 28, 12, tzinfo=UTC)),  # quiet hours in the gap
        ("Australia/Lord_Howe", "22:00", "06:30", datetime(2026, 4, 4, 0, tzinfo=UTC)),  # a half-hour change
        ("Asia/Kolkata", "12:30", "23:45", datetime(2026, 6, 8, 6, tzinfo=UTC)),
    ],
)
def test_the_vectorised_quiet_release_agrees_with_quiet_hours_at_every_minute(zone, start, end, window_start):
    quiet = QuietHours.from_dict({"start": start, "end": end})
    tz = ZoneInfo(zone)
    starts, ends, crossed = _quiet_intervals(quiet, tz, window_start, 48)
    times = np.arange(int(window_start.timestamp()), int(window_start.timestamp()) + 48 * 3600, 60) + 7

    i = np.searchsorted(starts, times, side="right") - 1
    inside = (i >= 0) & (times < ends[np.maximum(i, 0)])
    exact = ~(inside & crossed[np.maximum(i, 0)])  # elsewhere the planner asks QuietHours per instant

    for t, ok, held, k in zip(times.tolist(), exact.tolist(), inside.tolist(), i.tolist(), strict=True):
        if not ok:
            continue
        expected = quiet.end_after(datetime.fromtimestamp(t, UTC), tz)
        got = datetime.fromtimestamp(int(ends[k]), UTC) if held else None
        assert got == expected, datetime.fromtimestamp(t, UTC)
