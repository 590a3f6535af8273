"""The schedule form's echo: what a schedule will do, in words, before it is saved, from the same parsing
the form's POST and the API use. admin_client is pytest-django's logged-in superuser."""

from datetime import UTC, datetime

import pytest
import time_machine

from campaigns.forms import describe_instant

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday


def _preview(client, campaign, **params) -> dict:
    response = client.get(f"/admin/campaigns/campaign/{campaign.pk}/schedule/preview/", params)
    assert response.status_code == 200
    return response.json()


def test_an_instant_is_echoed_in_its_zone_and_in_utc():
    assert describe_instant(datetime(2026, 12, 1, 2, tzinfo=UTC), "Asia/Jakarta") == (
        "Tue 1 Dec 2026 09:00 Asia/Jakarta = 02:00 UTC"
    )


def test_the_echo_names_the_utc_day_when_it_differs():
    assert describe_instant(datetime(2026, 12, 1, 1, tzinfo=UTC), "America/New_York") == (
        "Mon 30 Nov 2026 20:00 America/New_York = Tue 1 Dec 01:00 UTC"
    )


@time_machine.travel(NOW, tick=False)
def test_a_one_off_schedule_echoes_its_instant(admin_client, ready_campaign):
    data = _preview(
        admin_client,
        ready_campaign,
        schedule_type="scheduled",
        date="2026-12-01",
        time="09:00",
        timezone="Asia/Jakarta",
    )
    assert data == {"ok": True, "runs": ["Tue 1 Dec 2026 09:00 Asia/Jakarta = 02:00 UTC"], "errors": {}}


@time_machine.travel(NOW, tick=False)
def test_a_recurring_rule_shows_its_next_five_runs(admin_client, ready_campaign):
    data = _preview(
        admin_client,
        ready_campaign,
        schedule_type="recurring",
        frequency="weekly",
        interval="2",
        days_of_week=["1", "3"],
        time="09:00",
        timezone="America/New_York",
    )
    # 12:00 UTC is 07:00 in New York: today's 09:00 is the first run, and "every 2 weeks" counts from its week.
    assert data["runs"] == [
        "Mon 30 Nov 2026 09:00 America/New_York = 14:00 UTC",
        "Wed 2 Dec 2026 09:00 America/New_York = 14:00 UTC",
        "Mon 14 Dec 2026 09:00 America/New_York = 14:00 UTC",
        "Wed 16 Dec 2026 09:00 America/New_York = 14:00 UTC",
        "Mon 28 Dec 2026 09:00 America/New_York = 14:00 UTC",
    ]


@time_machine.travel(NOW, tick=False)
def test_a_time_in_the_past_is_refused_in_the_services_words(admin_client, ready_campaign):
    data = _preview(
        admin_client, ready_campaign, schedule_type="scheduled", date="2026-11-01", time="09:00", timezone="UTC"
    )
    assert data["ok"] is False
    assert data["errors"] == {"date": ["scheduled_at: scheduled_at must be in the future."]}


@time_machine.travel(NOW, tick=False)
def test_a_weekly_rule_without_days_says_what_is_missing(admin_client, ready_campaign):
    data = _preview(
        admin_client, ready_campaign, schedule_type="recurring", frequency="weekly", time="09:00", timezone="UTC"
    )
    assert data["ok"] is False
    assert "days_of_week" in data["errors"]


def test_the_echo_needs_an_admin_login(client, ready_campaign):
    response = client.get(f"/admin/campaigns/campaign/{ready_campaign.pk}/schedule/preview/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_zone_picker_groups_zones_by_area(admin_client, ready_campaign):
    page = admin_client.get(f"/admin/campaigns/campaign/{ready_campaign.pk}/schedule/").content.decode()
    assert '<optgroup label="Asia">' in page
    assert '<option value="Asia/Jakarta">Asia/Jakarta</option>' in page
    assert 'id="ms-zone-filter"' in page
