"""Engagement history into profiles: tracked opens and clicks, the import API and command, the exposure of a
finished run, and rebuild_engagement (delivery.services on real PostgreSQL)."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
import time_machine
from django.core.management import call_command

from audience import engagement as eng
from audience.models import EngagementProfile
from campaigns.models import CampaignRun
from campaigns.services import campaign_run_fold_exposure
from delivery import services
from delivery.models import Delivery, Event
from tests.factories import ContactFactory, DeliveryFactory

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # a Wednesday
READER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def profile_of(contact) -> EngagementProfile:
    return EngagementProfile.objects.get(contact=contact)


def sent_delivery(workspace, contact, *, sent_at=NOW - timedelta(hours=2)) -> Delivery:
    return DeliveryFactory(
        run__campaign__workspace=workspace, contact=contact, status=Delivery.Status.SENT, sent_at=sent_at
    )


@time_machine.travel(NOW, tick=False)
def test_a_tracked_open_is_folded_into_the_contacts_profile(workspace):
    contact = ContactFactory(workspace=workspace)
    delivery = sent_delivery(workspace, contact)

    services.delivery_record_open(delivery_id=delivery.id, user_agent=READER)

    profile = profile_of(contact)
    values = eng.vector(profile.engagement)
    assert (profile.opens, values[eng.hour_of_week(NOW)], values.sum()) == (1, 1.0, 1.0)


@time_machine.travel(NOW, tick=False)
def test_a_scanner_open_is_a_machine_open_and_teaches_nothing(workspace):
    contact = ContactFactory(workspace=workspace)
    delivery = sent_delivery(workspace, contact)

    services.delivery_record_open(delivery_id=delivery.id, user_agent="Mimecast Link Scanner")

    profile = profile_of(contact)
    event = Event.objects.get(type=Event.Type.OPENED, delivery_id=delivery.id)
    assert (profile.opens, profile.machine_opens, profile.engagement, event.data["machine"]) == (0, 1, b"", True)


@time_machine.travel(NOW, tick=False)
def test_an_open_seconds_after_the_hand_off_is_a_machine_open(workspace):
    contact = ContactFactory(workspace=workspace)
    delivery = sent_delivery(workspace, contact, sent_at=NOW - timedelta(seconds=4))

    services.delivery_record_open(delivery_id=delivery.id, user_agent=READER)

    assert (profile_of(contact).opens, profile_of(contact).machine_opens) == (0, 1)


@time_machine.travel(NOW, tick=False)
def test_a_click_weighs_more_than_an_open(workspace, settings):
    contact = ContactFactory(workspace=workspace)
    delivery = sent_delivery(workspace, contact)

    services.delivery_record_click(delivery_id=delivery.id, url="https://example.com/", user_agent=READER)

    profile = profile_of(contact)
    assert (profile.clicks, eng.vector(profile.engagement).sum()) == (1, settings.STO_CLICK_WEIGHT)


def test_an_older_imported_event_is_decayed_to_the_profile(workspace, settings):
    contact = ContactFactory(workspace=workspace)
    rows = [
        {"email": contact.email, "type": "opened", "occurred_at": "2026-06-10T09:00:00Z"},
        {"email": contact.email, "type": "opened", "occurred_at": "2026-03-12T09:00:00+00:00"},  # 90 days before
    ]
    services.engagement_import(workspace_id=workspace.id, rows=rows, now=NOW)

    values = eng.vector(profile_of(contact).engagement)
    assert values.sum() == pytest.approx(1.5, abs=1e-4)


def test_the_import_skips_bad_rows_and_unknown_contacts_with_their_reason(workspace):
    contact = ContactFactory(workspace=workspace)
    rows = [
        {"email": contact.email, "type": "opened", "occurred_at": "2026-06-01T09:00:00+07:00", "user_agent": READER},
        {"email": "nobody@example.org", "type": "opened", "occurred_at": "2026-06-01T09:00:00Z"},
        {"email": contact.email, "type": "opened", "occurred_at": "2026-06-01T09:00:00"},
        {"email": contact.email, "type": "bounced", "occurred_at": "2026-06-01T09:00:00Z"},
        {"email": contact.email, "type": "clicked", "occurred_at": "2027-06-01T09:00:00Z"},
        "not an object",
    ]
    result = services.engagement_import(workspace_id=workspace.id, rows=rows, now=NOW)

    assert result.imported == 1
    assert result.skipped == [
        {"index": 1, "reason": "no contact with this email in this workspace"},
        {"index": 2, "reason": "occurred_at needs an offset or Z"},
        {"index": 3, "reason": "type must be opened or clicked"},
        {"index": 4, "reason": "occurred_at is in the future"},
        {"index": 5, "reason": "an event must be an object"},
    ]


def test_imported_events_are_in_the_event_stream_like_tracked_ones(workspace):
    contact = ContactFactory(workspace=workspace)
    row = {"email": contact.email.upper(), "type": "clicked", "occurred_at": "2026-06-01T09:00:00Z"}
    services.engagement_import(workspace_id=workspace.id, rows=[row], now=NOW)

    event = Event.objects.get(workspace=workspace, type=Event.Type.CLICKED)
    assert (event.email, event.occurred_at, event.data["imported"]) == (
        contact.email,
        datetime(2026, 6, 1, 9, tzinfo=UTC),
        True,
    )


def test_the_import_api_answers_imported_and_skipped(api, workspace):
    contact = ContactFactory(workspace=workspace)
    events = [
        {"email": contact.email, "type": "opened", "occurred_at": "2026-06-01T09:00:00Z"},
        {"email": "ghost@example.org", "type": "opened", "occurred_at": "2026-06-01T09:00:00Z"},
    ]
    response = api.post("/api/v1/engagement/events", {"events": events}, format="json")

    assert (response.status_code, response.json()) == (
        200,
        {"imported": 1, "skipped": [{"index": 1, "reason": "no contact with this email in this workspace"}]},
    )


def test_the_import_api_refuses_more_than_ten_thousand_events(api, workspace):
    events = [{"email": "a@example.org", "type": "opened", "occurred_at": "2026-06-01T09:00:00Z"}] * 10_001
    response = api.post("/api/v1/engagement/events", {"events": events}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (400, "VALIDATION_ERROR")
    assert "events" in response.json()["error"]["details"]


def test_the_import_api_does_not_reach_another_workspaces_contacts(other_api, workspace):
    contact = ContactFactory(workspace=workspace)
    row = {"email": contact.email, "type": "opened", "occurred_at": "2026-06-01T09:00:00Z"}
    response = other_api.post("/api/v1/engagement/events", {"events": [row]}, format="json")

    assert response.json()["imported"] == 0 and not EngagementProfile.objects.exists()


def test_import_engagement_command_imports_a_csv_and_reports_skipped_lines(workspace, tmp_path):
    contact = ContactFactory(workspace=workspace)
    path = tmp_path / "history.csv"
    path.write_text(
        "email,type,occurred_at,user_agent\n"
        f"{contact.email},opened,2026-06-01T09:00:00Z,{READER}\n"
        "ghost@example.org,opened,2026-06-01T09:00:00Z,\n"
        f"{contact.email},clicked,2026-06-02T10:00:00+02:00,\n"
    )
    out, err = StringIO(), StringIO()
    call_command("import_engagement", str(path), "--workspace", workspace.name, stdout=out, stderr=err)

    assert out.getvalue().strip().splitlines()[-1] == (
        f"Imported 2 engagement events into '{workspace.name}', 1 skipped."
    )
    assert "line 3: no contact with this email in this workspace" in err.getvalue()
    assert (profile_of(contact).opens, profile_of(contact).clicks) == (1, 1)


def test_a_finished_runs_hand_offs_become_exposure_once(workspace):
    contact = ContactFactory(workspace=workspace)
    delivery = sent_delivery(workspace, contact, sent_at=datetime(2026, 6, 8, 10, 30, tzinfo=UTC))
    CampaignRun.objects.filter(pk=delivery.run_id).update(status=CampaignRun.Status.SENT)

    first = campaign_run_fold_exposure(run_id=delivery.run_id)
    second = campaign_run_fold_exposure(run_id=delivery.run_id)

    profile = profile_of(contact)
    exposure = eng.vector(profile.exposure)
    assert (first, second, profile.sends, exposure[10], exposure.sum()) == (1, 0, 1, 1.0, 1.0)


def test_rebuild_engagement_reproduces_the_live_profiles(workspace):
    contact = ContactFactory(workspace=workspace)
    with time_machine.travel(NOW, tick=False):
        for hours_ago, agent in [(50, READER), (26, READER), (3, "Barracuda"), (1, READER)]:
            delivery = sent_delivery(workspace, contact, sent_at=NOW - timedelta(hours=hours_ago + 1))
            with time_machine.travel(NOW - timedelta(hours=hours_ago), tick=False):
                services.delivery_record_open(delivery_id=delivery.id, user_agent=agent)
    live = profile_of(contact)
    live_vector = eng.vector(live.engagement)
    EngagementProfile.objects.all().delete()  # the live path folded no exposure (runs not closed): keep it so

    out = StringIO()
    call_command("rebuild_engagement", "--workspace", workspace.name, stdout=out, stderr=StringIO())

    rebuilt = profile_of(contact)
    assert out.getvalue().strip().splitlines()[-1] == "Rebuilt 1 engagement profiles in 1 workspace(s)."
    assert (rebuilt.opens, rebuilt.machine_opens, rebuilt.sends) == (live.opens, live.machine_opens, 4)
    # The rebuild also knows the four hand-offs; engagement itself is decayed to the latest of them all.
    factor = eng.decay((rebuilt.decayed_to - live.decayed_to).total_seconds())
    np.testing.assert_allclose(eng.vector(rebuilt.engagement), live_vector * factor, rtol=1e-5)
