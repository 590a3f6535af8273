"""Concurrent state changes of one campaign: each transition has one winner and the campaign ends in one
consistent state. On real PostgreSQL here, and on SQLite, the run command's embedded default, through
tests/test_on_sqlite.py."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from campaigns import services
from campaigns.errors import CampaignTransitionInProgress
from campaigns.models import Campaign, CampaignRun
from common.errors import ApplicationError
from tests.threads import in_background, run_threads

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 20


def run_concurrently(calls):
    """Start every call at the same instant, each in its own thread and DB connection.
    Returns [(kind, "ok" | error code)]; any other exception in a thread fails the test."""

    def outcome(kind, call):
        def run():
            try:
                call()
            except ApplicationError as exc:
                return (kind, exc.code)
            return (kind, "ok")

        return run

    return run_threads(*(outcome(kind, call) for kind, call in calls))


def future(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def schedule_call(campaign, minutes):
    def call():
        request = services.schedule_parse(scheduled_at=future(minutes))
        services.campaign_schedule(workspace=campaign.workspace, campaign_id=campaign.id, request=request)

    return call


def assert_consistent(campaign: Campaign) -> None:
    campaign.refresh_from_db()
    if campaign.status == Campaign.Status.SCHEDULED:
        assert campaign.next_run_at is not None and campaign.schedule_type == "scheduled"
    elif campaign.status == Campaign.Status.DRAFT:
        assert campaign.next_run_at is None and campaign.schedule_type == ""
    elif campaign.status == Campaign.Status.SENDING:
        assert campaign.next_run_at is None
        assert CampaignRun.objects.filter(campaign=campaign).count() == 1


def test_twenty_simultaneous_sends_have_one_winner(ready_campaign):
    calls = [
        ("send", lambda: services.campaign_send_now(workspace=ready_campaign.workspace, campaign_id=ready_campaign.id))
    ] * THREADS
    results = run_concurrently(calls)
    assert [r for r in results if r[1] == "ok"] == [("send", "ok")]
    assert {code for _, code in results} <= {"ok", "CAMPAIGN_NOT_SENDABLE", "CAMPAIGN_TRANSITION_IN_PROGRESS"}
    assert CampaignRun.objects.filter(campaign=ready_campaign).count() == 1
    assert_consistent(ready_campaign)


def test_simultaneous_schedule_cancel_and_send_leave_one_consistent_state(ready_campaign):
    request = services.schedule_parse(scheduled_at=future(30))
    services.campaign_schedule(workspace=ready_campaign.workspace, campaign_id=ready_campaign.id, request=request)
    ws, cid = ready_campaign.workspace, ready_campaign.id
    calls = []
    for i in range(THREADS):
        if i % 3 == 0:
            calls.append(("cancel", lambda: services.campaign_cancel_schedule(workspace=ws, campaign_id=cid)))
        elif i % 3 == 1:
            calls.append(("schedule", schedule_call(ready_campaign, 60 + i)))
        else:
            calls.append(("send", lambda: services.campaign_send_now(workspace=ws, campaign_id=cid)))
    results = run_concurrently(calls)

    ok = [kind for kind, code in results if code == "ok"]
    sends = ok.count("send")
    assert sends <= 1
    assert CampaignRun.objects.filter(campaign=ready_campaign).count() == sends
    # A cancel wins only against a scheduled campaign: never more cancels than schedules (+ the initial one).
    assert ok.count("cancel") <= ok.count("schedule") + 1
    assert_consistent(ready_campaign)
    if sends:
        assert ready_campaign.status == Campaign.Status.SENDING
    assert {code for _, code in results} <= {
        "ok", "CAMPAIGN_NOT_SENDABLE", "CAMPAIGN_NOT_CANCELLABLE", "CAMPAIGN_TRANSITION_IN_PROGRESS",
    }


def test_a_change_that_cannot_get_the_lock_promptly_is_409(ready_campaign, settings):
    settings.CAMPAIGN_LOCK_TIMEOUT_MS = 200
    holding = threading.Event()
    release = threading.Event()

    def hold_lock():
        with transaction.atomic():
            Campaign.objects.select_for_update().get(pk=ready_campaign.pk)
            holding.set()
            release.wait(10)

    with in_background(hold_lock, stop=release.set):
        assert holding.wait(10), "the other transaction never took the lock"
        with pytest.raises(CampaignTransitionInProgress):
            services.campaign_send_now(workspace=ready_campaign.workspace, campaign_id=ready_campaign.id)
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == Campaign.Status.DRAFT


def test_transition_in_progress_is_a_409_envelope_over_the_api(api, ready_campaign, settings):
    settings.CAMPAIGN_LOCK_TIMEOUT_MS = 200
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        with transaction.atomic():
            Campaign.objects.select_for_update().get(pk=ready_campaign.pk)
            holding.set()
            release.wait(10)

    with in_background(hold_lock, stop=release.set):
        assert holding.wait(10), "the other transaction never took the lock"
        response = api.post(f"/api/v1/campaigns/{ready_campaign.id}/cancel-schedule")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CAMPAIGN_TRANSITION_IN_PROGRESS"


def _clients(api, count: int) -> list[APIClient]:
    """One client per thread, each with the key of `api` (a test client is not meant to be shared)."""
    clients = []
    for _ in range(count):
        client = APIClient()
        client._credentials = dict(api._credentials)
        clients.append(client)
    return clients


def test_parallel_schedules_over_the_api_answer_only_200_or_409(api, ready_campaign):
    url = f"/api/v1/campaigns/{ready_campaign.id}/schedule"
    calls = [
        (lambda c=client, i=i: c.post(url, {"scheduled_at": future(30 + i)}, format="json").status_code)
        for i, client in enumerate(_clients(api, 12))
    ]
    statuses = run_threads(*calls)
    assert set(statuses) <= {200, 409}
    assert 200 in statuses
    assert_consistent(ready_campaign)


def test_parallel_pause_resume_and_stop_of_a_sending_campaign_answer_only_200_or_409(api, ready_campaign):
    services.campaign_send_now(workspace=ready_campaign.workspace, campaign_id=ready_campaign.id)
    base = f"/api/v1/campaigns/{ready_campaign.id}"
    actions = ["pause", "resume", "stop"] * 4
    calls = [
        (lambda c=client, a=action: c.post(f"{base}/{a}", {}, format="json").status_code)
        for client, action in zip(_clients(api, len(actions)), actions, strict=True)
    ]
    statuses = run_threads(*calls)
    assert set(statuses) <= {200, 409}
    assert 200 in statuses
    ready_campaign.refresh_from_db()
    assert CampaignRun.objects.filter(campaign=ready_campaign).count() == 1
