from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import Workspace
from audience.models import Contact, Label, Segment
from campaigns.models import Campaign
from delivery.models import Event

pytestmark = pytest.mark.django_db


def seed(settings, tmp_path) -> list[str]:
    settings.DATA_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", "--contacts", "200", stdout=out)
    return out.getvalue().strip().splitlines()


def test_seed_demo_gives_contacts_across_zones_with_open_and_click_histories(settings, tmp_path):
    lines = seed(settings, tmp_path)
    workspace = Workspace.objects.get(name="Demo")
    assert lines[-1] == str(workspace.id)
    contacts = Contact.objects.filter(workspace=workspace)
    assert contacts.count() == 200
    assert contacts.values("timezone").distinct().count() == 10
    events = Event.objects.filter(workspace=workspace, campaign_id__isnull=True)
    assert set(events.values_list("type", flat=True)) == {"opened", "clicked"}
    assert events.values("email").distinct().count() > 100
    assert set(Label.objects.filter(workspace=workspace).values_list("name", flat=True)) == {
        "newsletter", "customers", "vip",
    }
    assert Segment.objects.filter(workspace=workspace).count() == 2


def test_seed_demo_schedules_a_campaign_a_minute_ahead_one_optimised_and_one_weekly(settings, tmp_path):
    seed(settings, tmp_path)
    campaigns = {c.name: c for c in Campaign.objects.filter(workspace__name="Demo")}
    assert all(c.status == Campaign.Status.SCHEDULED for c in campaigns.values())
    first = min(campaigns.values(), key=lambda c: c.next_run_at)
    assert first.name.startswith("Welcome")
    assert first.send_time_optimization is None
    assert [c.send_time_optimization for c in campaigns.values() if c.send_time_optimization] == [
        {"window_hours": 24, "holdout_percent": 10}
    ]
    assert [c.recurring_config["frequency"] for c in campaigns.values() if c.schedule_type == "recurring"] == [
        "weekly"
    ]


def test_seed_demo_twice_creates_nothing_more_and_keeps_the_development_key(settings, tmp_path):
    settings.DEBUG = True
    first = seed(settings, tmp_path)
    counts = (Contact.objects.count(), Event.objects.count(), Campaign.objects.count())
    second = seed(settings, tmp_path)
    assert (Contact.objects.count(), Event.objects.count(), Campaign.objects.count()) == counts
    assert second[-1] == first[-1] and len(second) == 1
    raw = (tmp_path / "demo-api-key").read_text().strip()
    assert any(raw in line for line in first)
