"""Fan-out of a campaign run into Delivery rows (campaigns.launching.run_fan_out), on real PostgreSQL."""

import math
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection

from audience.models import Contact
from campaigns import services as campaign_services
from campaigns.launching import run_fan_out
from campaigns.models import Campaign, CampaignRun
from delivery.models import Delivery
from delivery.services import DeliveryWriter
from tests.factories import (
    CampaignFactory,
    CampaignRunFactory,
    ContactFactory,
    LabelFactory,
    SendingDomainFactory,
    SuppressionFactory,
)

# The delivery-side writer of Delivery rows, which the fan-out hands its chunks to. Observed, never replaced;
# if it or run_fan_out move (or the writer becomes a public service), only the imports above change.


@pytest.fixture
def members(workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    return LabelFactory(workspace=workspace, name="members")


def audience_of(label) -> dict:
    return {
        "include_labels": [str(label.id)],
        "exclude_labels": [],
        "include_segments": [],
        "exclude_segments": [],
    }


def pending_run(workspace, label, **campaign_fields) -> CampaignRun:
    campaign = CampaignFactory(
        workspace=workspace, status=Campaign.Status.SENDING, audience=audience_of(label), **campaign_fields
    )
    return CampaignRunFactory(campaign=campaign, status=CampaignRun.Status.PENDING)


def test_fan_out_writes_one_delivery_per_recipient_and_sets_the_run_sending(workspace, members):
    contacts = ContactFactory.create_batch(7, workspace=workspace, labels=[members])
    run = pending_run(workspace, members)

    result = run_fan_out(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.total, result.written) == (CampaignRun.Status.SENDING, 7, 7)
    rows = Delivery.objects.filter(run=run)
    assert sorted(rows.values_list("email", flat=True)) == sorted(c.email for c in contacts)
    assert set(rows.values_list("status", "send_at")) == {(Delivery.Status.QUEUED, run.due_at)}


def test_suppressed_and_unsubscribed_contacts_get_no_delivery(workspace, members):
    kept = ContactFactory(workspace=workspace, labels=[members])
    ContactFactory(workspace=workspace, labels=[members], status=Contact.Status.UNSUBSCRIBED)
    listed = ContactFactory(workspace=workspace, labels=[members])
    SuppressionFactory(workspace=workspace, email=listed.email)
    run = pending_run(workspace, members)

    run_fan_out(run_id=run.id)

    assert list(Delivery.objects.filter(run=run).values_list("email", flat=True)) == [kept.email]


def test_a_fan_out_killed_half_way_completes_without_duplicates_when_run_again(workspace, members):
    contacts = ContactFactory.create_batch(6, workspace=workspace, labels=[members])
    run = pending_run(workspace, members)
    # What a worker killed mid-fan-out leaves: the run fanning out, some of its rows written.
    CampaignRun.objects.filter(pk=run.pk).update(
        status=CampaignRun.Status.FANNING_OUT, launched_at=run.due_at
    )
    for contact in contacts[:4]:
        Delivery.objects.create(
            workspace=workspace,
            run=run,
            campaign=run.campaign,
            contact=contact,
            email=contact.email,
            send_at=run.due_at,
        )

    result = run_fan_out(run_id=run.id)

    run.refresh_from_db()
    assert (result.written, run.total, run.status) == (2, 6, CampaignRun.Status.SENDING)
    assert Delivery.objects.filter(run=run).count() == 6


def test_a_second_fan_out_task_of_a_finished_fan_out_does_nothing(workspace, members):
    ContactFactory.create_batch(3, workspace=workspace, labels=[members])
    run = pending_run(workspace, members)
    run_fan_out(run_id=run.id)

    assert run_fan_out(run_id=run.id) is None
    assert Delivery.objects.filter(run=run).count() == 3


def test_fan_out_streams_in_chunks_smaller_than_the_audience(workspace, members, settings, monkeypatch):
    size = settings.DELIVERY_FANOUT_CHUNK_SIZE = 4
    contacts = ContactFactory.create_batch(4 * size + 1, workspace=workspace, labels=[members])
    run = pending_run(workspace, members)
    # Observe (never replace) the delivery-side writer the fan-out hands its rows to: the real write runs.
    # At each write, note its size and whether the audience query is still open on the server: rows
    # written while the audience is still being read are streamed, not loaded whole first.
    writes: list[tuple[int, bool]] = []
    real_write = DeliveryWriter.write

    def observed_write(self, chunk, *args, **kwargs):
        chunk = list(chunk)
        writes.append((len(chunk), audience_cursor_is_open()))
        return real_write(self, chunk, *args, **kwargs)

    monkeypatch.setattr(DeliveryWriter, "write", observed_write)

    result = run_fan_out(run_id=run.id)

    assert (result.written, result.total) == (len(contacts), len(contacts))
    assert set(Delivery.objects.filter(run=run).values_list("contact_id", flat=True)) == {c.id for c in contacts}
    sizes = [n for n, _ in writes]
    # 17 rows, chunks of at most 4: never the whole audience in one write, and no more writes than needed.
    assert sum(sizes) == len(contacts)
    assert max(sizes) <= size, f"a write larger than the chunk size: {sizes}"
    assert len(sizes) == math.ceil(len(contacts) / size), f"not ceil(N / chunk size) writes: {sizes}"
    # Every write but the last happens while the audience cursor is still open (the last may follow its end).
    assert all(open_ for _, open_ in writes[:-1]), f"the audience was read whole before writing: {writes}"


def audience_cursor_is_open() -> bool:
    """Whether this session has a server-side cursor open on the contacts table (Django's iterator())."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_cursors")
        return any(Contact._meta.db_table in statement for (statement,) in cursor.fetchall())


def test_recipients_in_three_timezones_get_the_wall_time_in_their_own_zone(workspace, members):
    zones = {
        "tokyo@example.org": "Asia/Tokyo",
        "berlin@example.org": "Europe/Berlin",
        "newyork@example.org": "America/New_York",
    }
    for email, zone in zones.items():
        ContactFactory(workspace=workspace, labels=[members], email=email, timezone=zone)
    campaign = CampaignFactory(workspace=workspace, audience=audience_of(members))
    with time_machine.travel(datetime(2026, 6, 30, 12, 0, tzinfo=UTC), tick=False):
        request = campaign_services.schedule_parse(
            schedule_type="scheduled",
            scheduled_at="2026-07-01T09:00:00",
            timezone_name="Europe/Berlin",
            recipient_local_time=True,
        )
        campaign = campaign_services.campaign_schedule(
            workspace=workspace, campaign_id=campaign.id, request=request
        )
    with time_machine.travel(campaign.next_run_at, tick=False):
        run = campaign_services.campaign_launch(campaign_id=campaign.id, due_at=campaign.next_run_at)
        run_fan_out(run_id=run.id)

    send_at = dict(Delivery.objects.filter(run=run).values_list("email", "send_at"))
    assert send_at == {
        "tokyo@example.org": datetime(2026, 7, 1, 0, 0, tzinfo=UTC),  # 09:00 JST
        "berlin@example.org": datetime(2026, 7, 1, 7, 0, tzinfo=UTC),  # 09:00 CEST
        "newyork@example.org": datetime(2026, 7, 1, 13, 0, tzinfo=UTC),  # 09:00 EDT
    }


def test_an_empty_audience_ends_the_run_and_the_campaign_as_sent(workspace, members):
    run = pending_run(workspace, members)

    run_fan_out(run_id=run.id)

    run.refresh_from_db()
    run.campaign.refresh_from_db()
    assert (run.status, run.campaign.status) == (CampaignRun.Status.SENT, Campaign.Status.SENT)


def test_a_run_stopped_before_its_fan_out_writes_nothing(workspace, members):
    ContactFactory.create_batch(3, workspace=workspace, labels=[members])
    run = pending_run(workspace, members)
    campaign_services.campaign_stop(workspace=workspace, campaign_id=run.campaign_id)

    assert run_fan_out(run_id=run.id) is None
    assert not Delivery.objects.filter(run=run).exists()


def test_a_run_paused_during_fan_out_keeps_its_rows_and_stays_paused(workspace, members):
    ContactFactory.create_batch(3, workspace=workspace, labels=[members])
    run = pending_run(workspace, members)
    CampaignRun.objects.filter(pk=run.pk).update(
        status=CampaignRun.Status.FANNING_OUT, launched_at=run.due_at
    )
    campaign_services.campaign_pause(workspace=workspace, campaign_id=run.campaign_id)

    run_fan_out(run_id=run.id)

    run.refresh_from_db()
    assert (run.status, run.total) == (CampaignRun.Status.PAUSED, 3)
    assert not Delivery.objects.filter(run=run, enqueued_at__isnull=False).exists()


def test_fan_out_enqueues_the_due_deliveries_at_once(workspace, members):
    ContactFactory.create_batch(3, workspace=workspace, labels=[members])
    run = pending_run(workspace, members)

    run_fan_out(run_id=run.id)

    assert Delivery.objects.filter(run=run, enqueued_at__isnull=True).count() == 0


def test_an_audience_query_that_fails_fails_the_run_with_the_reason(workspace, members):
    # An audience stored malformed (a number, not a list of ids) makes the audience query raise.
    run = pending_run(workspace, members)
    Campaign.objects.filter(pk=run.campaign_id).update(audience={"include_labels": 7})

    run_fan_out(run_id=run.id)

    run.refresh_from_db()
    run.campaign.refresh_from_db()
    assert (run.status, run.campaign.status) == (CampaignRun.Status.FAILED, Campaign.Status.FAILED)
    assert run.failure_reason.startswith("fan-out failed: TypeError")


def test_a_launch_while_the_complaint_rate_holds_sending_fails_the_run_unsent(workspace, members):
    from tests.factories import sent_and_complained

    ContactFactory.create_batch(3, workspace=workspace, labels=[members])
    sent_and_complained(workspace, sent=1000, complaints=4)
    run = pending_run(workspace, members)

    run_fan_out(run_id=run.id)

    run.refresh_from_db()
    run.campaign.refresh_from_db()
    assert (run.status, run.campaign.status) == (CampaignRun.Status.FAILED, Campaign.Status.FAILED)
    assert run.failure_reason.startswith("held: The complaint rate is 0.40%")
    assert not Delivery.objects.filter(run=run).exists()
