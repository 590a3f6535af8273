"""The admin site: the operators' home page and django-celery-beat's models kept for superusers."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django_celery_beat.models import PeriodicTask

from campaigns import services
from campaigns.models import Campaign, CampaignRun
from tests.factories import CampaignFactory, CampaignRunFactory, DeliveryFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a Tuesday


@pytest.fixture
def operator_client(client, django_user_model):
    """A staff user with every permission a role of operators would get: all but superuser."""
    user = django_user_model.objects.create_user("olga", "olga@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    client.force_login(user)
    return client


def _schedule(campaign, **body) -> Campaign:
    request = services.schedule_parse(**body)
    return services.campaign_schedule(workspace=campaign.workspace, campaign_id=campaign.pk, request=request)


# --- System models ---------------------------------------------------------------------------------------


def test_an_operator_does_not_see_the_system_models_in_the_sidebar(operator_client):
    page = operator_client.get("/admin/").content.decode()
    assert "Campaigns" in page
    assert "Periodic tasks" not in page
    assert "Crontabs" not in page


def test_an_operator_cannot_open_the_periodic_tasks(operator_client):
    assert operator_client.get("/admin/django_celery_beat/periodictask/").status_code == 403


def test_an_operator_cannot_delete_a_tick(operator_client):
    task = PeriodicTask.objects.first()
    assert task is not None  # migrate registers the system's ticks
    response = operator_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert PeriodicTask.objects.filter(pk=task.pk).exists()


def test_a_superuser_finds_them_under_system_last(admin_client):
    response = admin_client.get("/admin/")
    names = [app["name"] for app in response.context["app_list"]]
    assert names[-1] == "System"
    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200


# --- Home page --------------------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_the_home_page_shows_a_sending_campaign_with_a_progress_bar_and_projected_finish(admin_client, workspace):
    campaign = CampaignFactory(workspace=workspace, name="Black Friday", status=Campaign.Status.SENDING)
    run = CampaignRunFactory(campaign=campaign, total=4, sent=2, launched_at=NOW - timedelta(minutes=10))
    DeliveryFactory.create_batch(2, run=run)
    response = admin_client.get("/admin/", {"tz": "UTC"})
    item = response.context["sending"][0]
    # 2 of 4 in 10 minutes: the other 2 take 10 more.
    assert item["projected_finish_at"] == NOW + timedelta(minutes=10)
    page = response.content.decode()
    assert 'data-percent="50"' in page
    assert "Tue 1 Dec 08:10" in page


@time_machine.travel(NOW, tick=False)
def test_the_timeline_lists_each_recurring_run_of_the_week_in_the_chosen_zone(admin_client, ready_campaign):
    config = {"frequency": "daily", "time": "09:00", "time_zone": "Asia/Jakarta"}
    _schedule(ready_campaign, schedule_type="recurring", recurring_config=config)
    response = admin_client.get("/admin/", {"tz": "Asia/Jakarta"})
    rows = [entry for _, entries in response.context["timeline_days"] for entry in entries]
    # 08:00 UTC is 15:00 in Jakarta: today's run has gone, next Tuesday's is within the 7 days.
    assert [entry["local_at"].strftime("%a %d %H:%M") for entry in rows] == [
        "Wed 02 09:00",
        "Thu 03 09:00",
        "Fri 04 09:00",
        "Sat 05 09:00",
        "Sun 06 09:00",
        "Mon 07 09:00",
        "Tue 08 09:00",
    ]
    assert {entry["recipients"] for entry in rows} == {3}
    page = response.content.decode()
    assert page.count('class="ms-timeline-row"') == 7
    assert page.count("<td>09:00</td>") == 7  # the hour as the chosen zone reads it, not the server's UTC


@time_machine.travel(NOW, tick=False)
def test_an_sto_send_is_shown_as_a_span_of_its_window(admin_client, ready_campaign):
    _schedule(ready_campaign, scheduled_at="2026-12-02T09:00:00Z", send_time_optimization={"window_hours": 12})
    entry = admin_client.get("/admin/", {"tz": "UTC"}).context["timeline_days"][0][1][0]
    assert (entry["spread"], entry["at"], entry["until"]) == (
        "sto",
        datetime(2026, 12, 2, 9, tzinfo=UTC),
        datetime(2026, 12, 2, 21, tzinfo=UTC),
    )


@time_machine.travel(NOW, tick=False)
def test_a_local_time_send_spans_its_recipients_zones(admin_client, ready_campaign, workspace, customers):
    from tests.factories import ContactFactory

    ContactFactory(workspace=workspace, labels=[customers], timezone="Asia/Jakarta")  # UTC+7
    ContactFactory(workspace=workspace, labels=[customers], timezone="America/New_York")  # UTC-5
    _schedule(ready_campaign, scheduled_at="2026-12-03T09:00:00", timezone_name="UTC", recipient_local_time=True)
    entry = admin_client.get("/admin/", {"tz": "UTC"}).context["timeline_days"][0][1][0]
    assert entry["spread"] == "local_time"
    assert entry["at"] == datetime(2026, 12, 3, 2, tzinfo=UTC)  # 09:00 in Jakarta
    assert entry["until"] == datetime(2026, 12, 3, 15, tzinfo=UTC)  # the 14:00 hour (09:00 New York) ends


@time_machine.travel(NOW, tick=False)
def test_a_send_beyond_seven_days_is_not_on_the_timeline(admin_client, ready_campaign):
    _schedule(ready_campaign, scheduled_at="2026-12-09T09:00:00Z")
    assert admin_client.get("/admin/").context["timeline_count"] == 0


@time_machine.travel(NOW, tick=False)
def test_failed_and_missed_runs_and_paused_campaigns_need_attention(admin_client, workspace):
    failed = CampaignRunFactory(
        campaign__workspace=workspace, status=CampaignRun.Status.FAILED, failure_reason="audience is empty"
    )
    CampaignRunFactory(campaign__workspace=workspace, status=CampaignRun.Status.MISSED)
    CampaignFactory(workspace=workspace, name="On hold", status=Campaign.Status.PAUSED)
    page = admin_client.get("/admin/").content.decode()
    assert f'Failed: <a href="/admin/campaigns/campaign/{failed.campaign_id}/change/">' in page
    assert "audience is empty" in page
    assert page.count('class="ms-missed"') == 1
    assert "Paused: <a" in page


def test_the_engine_panel_shows_each_queue_and_the_heartbeat(admin_client):
    from common.tasks import heartbeat

    heartbeat()
    response = admin_client.get("/admin/")
    assert set(response.context["queues"]) == {"tx_high", "tx_low", "bulk", "default", "imports"}
    assert response.context["heartbeat"] < 5
    assert "s ago" in response.content.decode()


def test_another_workspace_is_left_out_when_one_is_chosen(admin_client, workspace, other_workspace):
    CampaignFactory(workspace=other_workspace, name="Theirs", status=Campaign.Status.PAUSED)
    CampaignFactory(workspace=workspace, name="Ours", status=Campaign.Status.PAUSED)
    response = admin_client.get("/admin/", {"workspace": str(workspace.pk)})
    assert [c.name for c in response.context["problems"]["paused"]] == ["Ours"]


def test_an_unknown_zone_falls_back_to_utc(admin_client):
    assert admin_client.get("/admin/", {"tz": "Mars/Olympus"}).context["zone"] == "UTC"


def test_a_staff_user_who_may_not_see_campaigns_gets_the_plain_index(client, django_user_model):
    user = django_user_model.objects.create_user("sam", "sam@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_contact"))
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert 'id="ms-timeline"' not in response.content.decode()
    assert "Contacts" in response.content.decode()
