"""Scheduling policies (docs/decisions/060) and sandbox runs (docs/decisions/061), end to end inside one process:
the schedule API, the launch, the fan-out and the real send path (delivery_send_batch) against real PostgreSQL
and Redis. Time is set with time-machine; nothing here sleeps."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from campaigns import services as campaign_services
from campaigns.launching import run_fan_out
from campaigns.models import Campaign, CampaignRun
from delivery.models import Delivery, Event
from delivery.services import delivery_send_batch
from tests.factories import CampaignFactory, ContactFactory, LabelFactory, SendingDomainFactory

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def members(workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    label = LabelFactory(workspace=workspace, name="members")
    ContactFactory.create_batch(3, workspace=workspace, labels=[label])
    return label


def audience_of(label) -> dict:
    return {"include_labels": [str(label.id)], "exclude_labels": [], "include_segments": [], "exclude_segments": []}


def scheduled(workspace, label, *, now: datetime, sandbox: bool = False, **body) -> Campaign:
    campaign = CampaignFactory(workspace=workspace, audience=audience_of(label))
    request = campaign_services.schedule_parse(**body, now=now)
    return campaign_services.campaign_schedule(
        workspace=workspace, campaign_id=campaign.id, request=request, sandbox=sandbox, now=now
    )


def launch_and_fan_out(campaign: Campaign, *, now: datetime) -> CampaignRun | None:
    campaign.refresh_from_db()
    run = campaign_services.campaign_launch(campaign_id=campaign.id, due_at=campaign.next_run_at, now=now)
    if run is not None and run.status == CampaignRun.Status.PENDING:
        run_fan_out(run_id=run.id, now=now)
        run.refresh_from_db()
    return run


def send_due(run: CampaignRun):
    return delivery_send_batch(delivery_ids=list(Delivery.objects.filter(run=run).values_list("id", flat=True)))


# --- the schedule body ----------------------------------------------------------------------------------


def test_the_schedule_api_stores_and_echoes_the_policies(api, members):
    campaign = CampaignFactory(workspace=api.workspace, audience=audience_of(members))
    body = {
        "scheduled_at": "2031-07-01T09:00:00Z",
        "max_lateness_minutes": 30,
        "quiet_hours": {"start": "21:00", "end": "08:00"},
    }

    response = api.post(f"/api/v1/campaigns/{campaign.id}/schedule", body, format="json")

    assert response.status_code == 200, response.json()
    schedule = response.json()["schedule"]
    assert (schedule["max_lateness_minutes"], schedule["quiet_hours"], schedule["only_new_recipients"]) == (
        30,
        {"start": "21:00", "end": "08:00"},
        False,
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_lateness_minutes": 0}, "max_lateness_minutes"),
        ({"max_lateness_minutes": 10081}, "max_lateness_minutes"),
        ({"quiet_hours": {"start": "9pm", "end": "08:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "21:00"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "21:00", "end": "21:00"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "21:00", "end": "08:00", "zone": "UTC"}}, "quiet_hours.zone"),
        ({"only_new_recipients": True}, "only_new_recipients"),
    ],
)
def test_a_bad_policy_is_a_400_naming_the_field_and_nothing_changes(api, members, extra, field):
    campaign = CampaignFactory(workspace=api.workspace, audience=audience_of(members))

    response = api.post(
        f"/api/v1/campaigns/{campaign.id}/schedule", {"scheduled_at": "2031-07-01T09:00:00Z", **extra}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


# --- max_lateness_minutes -------------------------------------------------------------------------------


def test_a_one_off_run_later_than_its_lateness_is_missed_and_the_campaign_failed(workspace, members):
    campaign = scheduled(
        workspace, members, now=T0 - timedelta(days=1), scheduled_at=T0.isoformat(), max_lateness_minutes=5
    )

    run = launch_and_fan_out(campaign, now=T0 + timedelta(minutes=6))

    campaign.refresh_from_db()
    assert (run.status, campaign.status) == (CampaignRun.Status.MISSED, Campaign.Status.FAILED)
    assert run.failure_reason.startswith("missed: could not start until 6 minutes after its due time")
    assert not Delivery.objects.filter(campaign=campaign).exists()
    event = Event.objects.get(campaign_id=campaign.id, type=Event.Type.CAMPAIGN_MISSED)
    assert (event.run_id, event.data["reason"]) == (run.id, run.failure_reason)


def test_a_missed_one_off_campaign_can_be_started_again(api, members):
    campaign = scheduled(
        api.workspace, members, now=T0 - timedelta(days=1), scheduled_at=T0.isoformat(), max_lateness_minutes=5
    )
    launch_and_fan_out(campaign, now=T0 + timedelta(minutes=6))

    response = api.post(f"/api/v1/campaigns/{campaign.id}/send")

    assert (response.status_code, response.json()["status"]) == (200, "sending")


def test_the_runs_endpoint_shows_the_missed_run_with_its_reason(api, members):
    campaign = scheduled(
        api.workspace, members, now=T0 - timedelta(days=1), scheduled_at=T0.isoformat(), max_lateness_minutes=5
    )
    launch_and_fan_out(campaign, now=T0 + timedelta(minutes=6))

    [row] = api.get(f"/api/v1/campaigns/{campaign.id}/runs").json()["results"]

    assert (row["status"], row["failure_reason"][:7]) == ("missed", "missed:")


def test_a_recurring_run_later_than_its_lateness_is_missed_and_the_next_occurrence_stays_scheduled(workspace, members):
    config = {"frequency": "daily", "time": "09:00", "time_zone": "UTC"}
    campaign = scheduled(
        workspace,
        members,
        now=T0 - timedelta(hours=1),
        schedule_type="recurring",
        recurring_config=config,
        max_lateness_minutes=10,
    )

    run = launch_and_fan_out(campaign, now=T0 + timedelta(minutes=11))

    campaign.refresh_from_db()
    assert run.status == CampaignRun.Status.MISSED
    assert (campaign.status, campaign.next_run_at) == (Campaign.Status.SCHEDULED, T0 + timedelta(days=1))


def test_a_run_within_its_lateness_starts_late_as_usual(workspace, members):
    campaign = scheduled(
        workspace, members, now=T0 - timedelta(days=1), scheduled_at=T0.isoformat(), max_lateness_minutes=5
    )

    run = launch_and_fan_out(campaign, now=T0 + timedelta(minutes=4))

    assert (run.status, run.total) == (CampaignRun.Status.SENDING, 3)


def test_without_a_lateness_a_late_run_starts_as_soon_as_it_can(workspace, members):
    campaign = scheduled(workspace, members, now=T0 - timedelta(days=1), scheduled_at=T0.isoformat())

    run = launch_and_fan_out(campaign, now=T0 + timedelta(hours=5))

    assert run.status == CampaignRun.Status.SENDING


def test_deliveries_queued_longer_than_the_lateness_are_cancelled_as_missed_not_sent(workspace, members):
    campaign = scheduled(
        workspace, members, now=T0 - timedelta(days=1), scheduled_at=T0.isoformat(), max_lateness_minutes=15
    )
    run = launch_and_fan_out(campaign, now=T0)

    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        result = send_due(run)

    run.refresh_from_db()
    rows = list(Delivery.objects.filter(run=run).values_list("status", "error"))
    assert (result.sent, result.cancelled) == (0, 3)
    assert {status for status, _ in rows} == {Delivery.Status.CANCELLED}
    assert all(error.startswith("missed: 20 minutes after its send time") for _, error in rows)
    assert (run.status, run.cancelled) == (CampaignRun.Status.SENT, 3)
    assert Event.objects.filter(run_id=run.id, type=Event.Type.CANCELLED).count() == 3


# --- quiet hours ----------------------------------------------------------------------------------------


def test_fan_out_moves_a_send_time_inside_the_quiet_hours_to_their_end_in_each_zone(workspace, members):
    workspace.timezone = "Asia/Jakarta"  # the others' zone: 02:00Z is 09:00 there, outside 21:00-08:00
    workspace.save()
    ContactFactory(workspace=workspace, labels=[members], email="ny@example.org", timezone="America/New_York")
    campaign = scheduled(
        workspace,
        members,
        now=T0 - timedelta(days=1),
        scheduled_at=datetime(2026, 7, 1, 2, 0, tzinfo=UTC).isoformat(),  # 22:00 in New York (EDT)
        quiet_hours={"start": "21:00", "end": "08:00"},
    )

    run = launch_and_fan_out(campaign, now=datetime(2026, 7, 1, 2, 0, tzinfo=UTC))

    ny = Delivery.objects.get(run=run, email="ny@example.org")
    others = Delivery.objects.filter(run=run).exclude(email="ny@example.org")
    assert ny.send_at == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert "moved out of quiet hours 21:00-08:00 in America/New_York" in ny.send_reason
    assert {row.send_at for row in others} == {datetime(2026, 7, 1, 2, 0, tzinfo=UTC)}  # 09:00 in Jakarta


def test_quiet_hours_end_follows_the_spring_forward_change(workspace, members):
    ContactFactory(workspace=workspace, labels=[members], email="ny@example.org", timezone="America/New_York")
    # 22:00 EST on Saturday 7 March 2026; clocks go forward at 02:00 that night, so 08:00 is EDT (12:00Z).
    at = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
    campaign = scheduled(
        workspace,
        members,
        now=at - timedelta(days=1),
        scheduled_at=at.isoformat(),
        quiet_hours={"start": "21:00", "end": "08:00"},
    )

    run = launch_and_fan_out(campaign, now=at)

    assert Delivery.objects.get(run=run, email="ny@example.org").send_at == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_quiet_hours_end_follows_the_fall_back_change(workspace, members):
    ContactFactory(workspace=workspace, labels=[members], email="ny@example.org", timezone="America/New_York")
    # 22:00 EDT on Saturday 31 October 2026; clocks go back at 02:00, so 08:00 is EST (13:00Z).
    at = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    campaign = scheduled(
        workspace,
        members,
        now=at - timedelta(days=1),
        scheduled_at=at.isoformat(),
        quiet_hours={"start": "21:00", "end": "08:00"},
    )

    run = launch_and_fan_out(campaign, now=at)

    assert Delivery.objects.get(run=run, email="ny@example.org").send_at == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_send_plan_gives_the_quiet_hours_reason_code(api, members):
    api.workspace.timezone = "Asia/Jakarta"  # the others' zone: 02:00Z is 09:00 there
    api.workspace.save()
    ContactFactory(workspace=api.workspace, labels=[members], email="ny@example.org", timezone="America/New_York")
    at = datetime(2031, 7, 1, 2, 0, tzinfo=UTC)  # 22:00 EDT
    campaign = scheduled(
        api.workspace,
        members,
        now=at - timedelta(days=1),
        scheduled_at=at.isoformat(),
        quiet_hours={"start": "21:00", "end": "08:00"},
    )

    with time_machine.travel(at - timedelta(days=1), tick=False):
        plan = api.get(f"/api/v1/campaigns/{campaign.id}/send-plan").json()

    by_email = {row["email"]: row for row in plan["sample"]}
    assert (by_email["ny@example.org"]["reason_code"], by_email["ny@example.org"]["send_at"]) == (
        "quiet_hours",
        "2031-07-01T12:00:00Z",
    )
    assert {row["reason_code"] for email, row in by_email.items() if email != "ny@example.org"} == {"launch_time"}


def test_a_send_resumed_inside_the_quiet_hours_holds_those_recipients_until_they_end(workspace, members):
    workspace.timezone = "Asia/Jakarta"  # the others' zone: daytime at every instant below
    workspace.save()
    ny = ContactFactory(workspace=workspace, labels=[members], email="ny@example.org", timezone="America/New_York")
    campaign = scheduled(
        workspace,
        members,
        now=T0 - timedelta(days=1),
        scheduled_at=T0.isoformat(),
        quiet_hours={"start": "21:00", "end": "08:00"},
    )
    run = launch_and_fan_out(campaign, now=T0)  # 05:00 in New York: planned for 08:00 EDT, 12:00Z
    campaign_services.campaign_pause(workspace=workspace, campaign_id=campaign.id)
    campaign_services.campaign_resume(workspace=workspace, campaign_id=campaign.id)

    night = datetime(2026, 7, 2, 2, 30, tzinfo=UTC)  # resumed and sent at 22:30 in New York, 02:30 in UTC
    with time_machine.travel(night, tick=False):
        result = send_due(run)

    held = Delivery.objects.get(run=run, contact=ny)
    assert (result.sent, result.deferred) == (3, 1)
    assert (held.status, held.send_at, held.enqueued_at) == (
        Delivery.Status.QUEUED,
        datetime(2026, 7, 2, 12, 0, tzinfo=UTC),
        None,
    )


# --- only_new_recipients --------------------------------------------------------------------------------


def test_only_new_recipients_reaches_each_contact_once_over_three_runs(workspace, members):
    config = {"frequency": "daily", "time": "09:00", "time_zone": "UTC"}
    campaign = scheduled(
        workspace,
        members,
        now=T0 - timedelta(hours=1),
        schedule_type="recurring",
        recurring_config=config,
        only_new_recipients=True,
    )
    reached = []
    for day, added in enumerate((0, 2, 1)):
        now = T0 + timedelta(days=day)
        ContactFactory.create_batch(added, workspace=workspace, labels=[members])
        run = launch_and_fan_out(campaign, now=now)
        with time_machine.travel(now, tick=False):
            send_due(run)
        reached.append(
            set(Delivery.objects.filter(run=run, status=Delivery.Status.SENT).values_list("email", flat=True))
        )

    assert [len(emails) for emails in reached] == [3, 2, 1]
    assert not (reached[0] & reached[1]) and not (reached[1] & reached[2]) and not (reached[0] & reached[2])


def test_without_only_new_recipients_every_run_reaches_the_whole_audience(workspace, members):
    config = {"frequency": "daily", "time": "09:00", "time_zone": "UTC"}
    campaign = scheduled(
        workspace, members, now=T0 - timedelta(hours=1), schedule_type="recurring", recurring_config=config
    )
    totals = []
    for day in range(2):
        run = launch_and_fan_out(campaign, now=T0 + timedelta(days=day))
        with time_machine.travel(T0 + timedelta(days=day), tick=False):
            send_due(run)
        totals.append(run.total)

    assert totals == [3, 3]


def test_only_new_recipients_does_not_make_a_fully_reached_audience_unready(workspace, members):
    config = {"frequency": "daily", "time": "09:00", "time_zone": "UTC"}
    campaign = scheduled(
        workspace,
        members,
        now=T0 - timedelta(hours=1),
        schedule_type="recurring",
        recurring_config=config,
        only_new_recipients=True,
    )
    run = launch_and_fan_out(campaign, now=T0)
    with time_machine.travel(T0, tick=False):
        send_due(run)

    from campaigns.selectors import campaign_readiness, campaign_recipient_count

    campaign.refresh_from_db()
    assert campaign_readiness(workspace=workspace, campaign=campaign)["can_send"] is True
    assert campaign_recipient_count(workspace=workspace, campaign=campaign) == 0


# --- stop -----------------------------------------------------------------------------------------------


def test_a_stopped_run_counts_its_remaining_deliveries_cancelled_and_nothing_pending(api, members):
    campaign = scheduled(api.workspace, members, now=T0 - timedelta(days=1), scheduled_at=T0.isoformat())
    run = launch_and_fan_out(campaign, now=T0)
    first = Delivery.objects.filter(run=run).order_by("id").first()
    with time_machine.travel(T0, tick=False):
        delivery_send_batch(delivery_ids=[first.id])

    api.post(f"/api/v1/campaigns/{campaign.id}/stop")

    body = api.get(f"/api/v1/campaigns/{campaign.id}").json()
    [row] = api.get(f"/api/v1/campaigns/{campaign.id}/runs").json()["results"]
    assert body["progress"] == {"total": 3, "sent": 1, "failed": 0, "cancelled": 2, "pending": 0}
    assert (row["status"], row["sent"], row["cancelled"]) == ("cancelled", 1, 2)


# --- sandbox --------------------------------------------------------------------------------------------


def test_a_sandbox_key_campaign_runs_the_pipeline_and_hands_nothing_to_the_mail_server(sandbox_api, members, sink):
    campaign = CampaignFactory(workspace=sandbox_api.workspace, audience=audience_of(members))

    response = sandbox_api.post(f"/api/v1/campaigns/{campaign.id}/send")
    run = CampaignRun.objects.get(campaign=campaign)
    run_fan_out(run_id=run.id)
    result = send_due(run)

    run.refresh_from_db()
    assert (response.json()["sandbox"], run.sandbox, run.status, result.sent) == (
        True,
        True,
        CampaignRun.Status.SENT,
        3,
    )
    assert sink.messages == []
    assert set(Delivery.objects.filter(run=run).values_list("sandbox", "status")) == {(True, Delivery.Status.SENT)}
    events = Event.objects.filter(run_id=run.id, type=Event.Type.SENT)
    assert events.count() == 3 and all(event.data == {"sandbox": True} for event in events)
    assert all(message_id for message_id in Delivery.objects.filter(run=run).values_list("message_id", flat=True))


def test_a_live_key_campaign_reaches_the_mail_server_and_is_not_marked(api, members, sink):
    campaign = CampaignFactory(workspace=api.workspace, audience=audience_of(members))

    api.post(f"/api/v1/campaigns/{campaign.id}/send")
    run = CampaignRun.objects.get(campaign=campaign)
    run_fan_out(run_id=run.id)
    send_due(run)

    assert len(sink.messages) == 3
    assert not Delivery.objects.filter(run=run, sandbox=True).exists()
    assert not Event.objects.filter(run_id=run.id, data__sandbox=True).exists()


def test_a_campaign_scheduled_with_a_sandbox_key_launches_a_sandbox_run(sandbox_api, members):
    campaign = CampaignFactory(workspace=sandbox_api.workspace, audience=audience_of(members))
    with time_machine.travel(T0 - timedelta(days=1), tick=False):
        sandbox_api.post(f"/api/v1/campaigns/{campaign.id}/schedule", {"scheduled_at": T0.isoformat()}, format="json")

    run = launch_and_fan_out(campaign, now=T0)

    assert (run.sandbox, set(Delivery.objects.filter(run=run).values_list("sandbox", flat=True))) == (True, {True})
