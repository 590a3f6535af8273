"""Send Time Optimization inside the fan-out and the send-plan (campaigns.planning, campaigns.launching) on
real PostgreSQL: profiles built through the history import, runs fanned out for real."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from campaigns.launching import run_fan_out
from campaigns.models import Campaign, CampaignRun
from campaigns.planning import local_time_launch_at
from campaigns.selectors import campaign_send_plan
from delivery.models import Delivery
from delivery.services import engagement_import
from tests.factories import CampaignFactory, CampaignRunFactory, ContactFactory, LabelFactory, SendingDomainFactory

LAUNCH = datetime(2026, 6, 8, 6, 0, tzinfo=UTC)  # a Monday, 06:00 UTC
HISTORY_END = LAUNCH - timedelta(days=1)


@pytest.fixture
def readers(workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    return LabelFactory(workspace=workspace, name="readers")


def opened_at(contact, *, weekday: int, hour: int, weeks: int, kind: str = "opened") -> None:
    """`weeks` opens on `weekday` (Monday 0) at `hour`:20 UTC, one a week, the last in the week before LAUNCH."""
    monday = (HISTORY_END - timedelta(days=HISTORY_END.weekday())).replace(hour=0, minute=0)
    rows = [
        {
            "email": contact.email,
            "type": kind,
            "occurred_at": (monday - timedelta(weeks=w) + timedelta(days=weekday, hours=hour, minutes=20)).isoformat(),
        }
        for w in range(1, weeks + 1)
    ]
    result = engagement_import(workspace_id=contact.workspace_id, rows=rows, now=LAUNCH)
    assert result.imported == weeks


def sto_campaign(workspace, label, *, window_hours=24, holdout_percent=0, **fields) -> Campaign:
    return CampaignFactory(
        workspace=workspace,
        status=Campaign.Status.SCHEDULED,
        audience={"include_labels": [str(label.id)]},
        send_time_optimization={"window_hours": window_hours, "holdout_percent": holdout_percent},
        scheduled_at=fields.pop("scheduled_at", LAUNCH),
        next_run_at=fields.pop("next_run_at", LAUNCH),
        **fields,
    )


def fan_out(campaign, *, due_at=LAUNCH, occurrence_at=None) -> dict[str, Delivery]:
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING)
    run = CampaignRunFactory(
        campaign=campaign, status=CampaignRun.Status.PENDING, due_at=due_at, occurrence_at=occurrence_at or due_at
    )
    run_fan_out(run_id=run.id, now=due_at)
    return {d.email: d for d in Delivery.objects.filter(run=run)}


def test_a_contact_with_history_is_planned_in_their_best_hour(workspace, readers):
    ann = ContactFactory(workspace=workspace, labels=[readers], timezone="Asia/Jakarta")
    opened_at(ann, weekday=0, hour=14, weeks=30)  # Mondays 14:xx UTC = 21:xx in Jakarta

    delivery = fan_out(sto_campaign(workspace, readers))[ann.email]

    assert delivery.send_at.replace(minute=0, second=0) == LAUNCH.replace(hour=14)
    assert delivery.send_reason_code == "own_history"
    assert delivery.send_reason.startswith("own history: 30 opens, best Mon 21:00 Asia/Jakarta")


def test_a_contact_without_history_gets_the_audiences_best_hour(workspace, readers):
    ann, bob = ContactFactory.create_batch(2, workspace=workspace, labels=[readers])
    opened_at(ann, weekday=0, hour=17, weeks=10)

    delivery = fan_out(sto_campaign(workspace, readers))[bob.email]

    assert (delivery.send_at.hour, delivery.send_reason_code) == (17, "audience_history")


def test_no_history_in_the_workspace_sends_at_the_window_start(workspace, readers):
    ann = ContactFactory(workspace=workspace, labels=[readers])

    delivery = fan_out(sto_campaign(workspace, readers))[ann.email]

    assert (delivery.send_at, delivery.send_reason_code) == (LAUNCH, "window_start")


def test_recipients_with_one_preference_are_spread_across_the_hour(workspace, readers):
    contacts = ContactFactory.create_batch(40, workspace=workspace, labels=[readers])
    for contact in contacts[:3]:
        opened_at(contact, weekday=0, hour=10, weeks=20)

    deliveries = fan_out(sto_campaign(workspace, readers)).values()

    assert {d.send_at.hour for d in deliveries} == {10}
    assert len({d.send_at.minute // 15 for d in deliveries}) == 4  # every quarter of the hour gets some


def test_the_holdout_gets_the_window_start_and_is_exact(workspace, readers):
    contacts = ContactFactory.create_batch(60, workspace=workspace, labels=[readers])
    opened_at(contacts[0], weekday=0, hour=12, weeks=5)

    deliveries = fan_out(sto_campaign(workspace, readers, holdout_percent=10)).values()

    held = [d for d in deliveries if d.send_reason_code == "holdout"]
    assert (len(held), {d.send_at for d in held}) == (6, {LAUNCH})


def test_sto_with_local_time_plans_each_recipient_inside_the_window_in_their_own_zone(workspace, readers):
    zones = ["Asia/Jakarta", "Europe/London", "America/New_York", "Pacific/Auckland", ""]
    contacts = [ContactFactory(workspace=workspace, labels=[readers], timezone=z) for z in zones]
    # The audience reads mail on Tuesdays at 14:xx on its own clock (a contact in UTC).
    opened_at(ContactFactory(workspace=workspace, timezone="UTC"), weekday=1, hour=14, weeks=10)
    local = datetime(2026, 6, 9, 9, 0, tzinfo=ZoneInfo("Europe/London"))  # Tue 09:00 wall time everywhere
    campaign = sto_campaign(
        workspace, readers, window_hours=12, recipient_local_time=True, schedule_timezone="Europe/London"
    )
    due = local_time_launch_at(local_date=local.date(), wall=local.time(), now=LAUNCH)

    deliveries = fan_out(campaign, due_at=due, occurrence_at=local.astimezone(UTC))

    for contact in contacts:
        zone = ZoneInfo(contact.timezone or workspace.timezone)
        start = datetime(2026, 6, 9, 9, 0, tzinfo=zone)
        delivery = deliveries[contact.email]
        assert start <= delivery.send_at < start + timedelta(hours=12), contact.timezone
        # The prior is kept in local time: each recipient gets the audience's Tuesday 14:xx on their own clock.
        assert (delivery.send_at.astimezone(zone).hour, delivery.send_reason_code) == (14, "audience_history")
    auckland = deliveries[contacts[3].email]
    assert auckland.send_at.astimezone(UTC).replace(minute=0, second=0) == datetime(2026, 6, 9, 2, tzinfo=UTC)


def test_a_dst_change_inside_the_window_keeps_it_w_real_hours_long(workspace, readers):
    # London leaves summer time at 01:00 UTC on Sunday 25 October 2026. The window opens Saturday 09:00
    # BST (08:00 UTC) and lasts 24 real hours, to Sunday 08:00 UTC (08:00 GMT).
    late, inside = ContactFactory.create_batch(2, workspace=workspace, labels=[readers], timezone="Europe/London")
    opened_at(late, weekday=6, hour=8, weeks=20)  # Sunday 08:xx UTC: just past the window
    opened_at(inside, weekday=6, hour=7, weeks=20)  # Sunday 07:xx UTC: its last hour
    opened_at(late, weekday=5, hour=20, weeks=6)  # and some on Saturday evenings
    start = datetime(2026, 10, 24, 8, 0, tzinfo=UTC)
    campaign = sto_campaign(workspace, readers, scheduled_at=start, next_run_at=start)

    with time_machine.travel(start - timedelta(hours=1), tick=False):
        deliveries = fan_out(campaign, due_at=start)

    assert deliveries[inside.email].send_at.replace(minute=0, second=0) == datetime(2026, 10, 25, 7, tzinfo=UTC)
    assert "best Sun 07:00 Europe/London" in deliveries[inside.email].send_reason  # GMT by then
    assert deliveries[late.email].send_at.replace(minute=0, second=0) == datetime(2026, 10, 24, 20, tzinfo=UTC)


def test_the_send_plan_before_launch_is_what_the_fan_out_writes(workspace, readers, api):
    contacts = ContactFactory.create_batch(30, workspace=workspace, labels=[readers], timezone="America/Chicago")
    for i, contact in enumerate(contacts[:12]):
        opened_at(contact, weekday=0, hour=8 + i % 5, weeks=1 + i)
    campaign = sto_campaign(workspace, readers, holdout_percent=20)

    with time_machine.travel(LAUNCH - timedelta(hours=2), tick=False):
        plan = campaign_send_plan(workspace=workspace, campaign=campaign, sample_size=1000)
        one = api.get(f"/api/v1/campaigns/{campaign.id}/send-plan", {"email": contacts[3].email}).json()
    deliveries = fan_out(campaign)

    written = Counter(d.send_at.replace(minute=0, second=0).strftime("%Y-%m-%dT%H:%M:%SZ") for d in deliveries.values())
    assert plan["per_hour"] == dict(written)
    assert {(e["email"], e["send_at"], e["reason_code"], e["reason"]) for e in plan["sample"]} == {
        (d.email, d.send_at.strftime("%Y-%m-%dT%H:%M:%SZ"), d.send_reason_code, d.send_reason)
        for d in deliveries.values()
    }
    mine = deliveries[contacts[3].email]
    assert [(e["email"], e["reason_code"], e["reason"]) for e in one["sample"]] == [
        (mine.email, mine.send_reason_code, mine.send_reason)
    ]


def test_the_send_plan_email_filter_refuses_a_malformed_address(workspace, readers, api):
    campaign = sto_campaign(workspace, readers)

    response = api.get(f"/api/v1/campaigns/{campaign.id}/send-plan", {"email": "not an address"})

    assert (response.status_code, list(response.json()["error"]["details"])) == (400, ["email"])
