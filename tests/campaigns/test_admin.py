"""The campaign admin: saves and actions go through the services, refusals are messages or form errors."""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.messages import get_messages

from campaigns import services
from campaigns.models import AUDIENCE_KEYS, Campaign, CampaignRun
from tests.factories import CampaignFactory, CampaignRunFactory, LabelFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/campaigns/campaign/"


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _schedule(campaign, **body) -> Campaign:
    request = services.schedule_parse(**body)
    return services.campaign_schedule(workspace=campaign.workspace, campaign_id=campaign.pk, request=request)


def _weekly(campaign) -> Campaign:
    config = {"frequency": "weekly", "days_of_week": [1, 3], "time": "09:00", "time_zone": "America/New_York"}
    return _schedule(campaign, schedule_type="recurring", recurring_config=config)


def _once(campaign) -> Campaign:
    return _schedule(campaign, scheduled_at="2030-07-01T09:00:00Z")


def _change_form_data(campaign, **overrides) -> dict:
    data = {
        "name": campaign.name,
        "category": campaign.category,
        "subject": campaign.subject,
        "preheader": campaign.preheader,
        "from_name": campaign.from_name,
        "from_email": campaign.from_email,
        "reply_to": campaign.reply_to,
        "template": "",
        "html": campaign.html,
        "text": campaign.text,
        **{key: campaign.audience.get(key, []) for key in AUDIENCE_KEYS},
        "tracking": json.dumps(campaign.tracking),
    }
    data.update(overrides)
    return data


def _action(admin_client, campaign, action: str):
    return admin_client.post(f"{CHANGELIST}{campaign.pk}/{action}/", follow=True)


# --- Changelist -------------------------------------------------------------------------------------------


def test_changelist_shows_schedule_summary_progress_and_filters(admin_client, ready_campaign, other_workspace):
    _weekly(ready_campaign)
    CampaignRunFactory(campaign=ready_campaign, total=10, sent=4)
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "weekly Mon,Wed 09:00 America/New_York" in page
    assert "4/10" in page
    assert 'data-status="scheduled"' in page
    filter_titles = {spec.title for spec in response.context["cl"].filter_specs}
    assert filter_titles == {"status", "workspace", "category", "schedule type"}


def test_changelist_summarises_a_one_off_schedule_in_utc(admin_client, ready_campaign):
    _schedule(ready_campaign, scheduled_at="2030-07-01T09:00:00", timezone_name="Asia/Jakarta")
    page = admin_client.get(CHANGELIST).content.decode()
    assert "once at 2030-07-01 02:00Z (2030-07-01 09:00 Asia/Jakarta)" in page


def test_changelist_filters_by_status(admin_client, ready_campaign, workspace):
    _once(ready_campaign)
    CampaignFactory(workspace=workspace, name="Still a draft")
    response = admin_client.get(CHANGELIST, {"status__exact": "scheduled"})
    assert [c.name for c in response.context["cl"].result_list] == ["Spring sale"]


def test_changelist_searches_name_and_subject(admin_client, workspace):
    CampaignFactory(workspace=workspace, name="Autumn", subject="Leaves are falling")
    CampaignFactory(workspace=workspace, name="Winter", subject="Snow")
    response = admin_client.get(CHANGELIST, {"q": "leaves"})
    assert [c.name for c in response.context["cl"].result_list] == ["Autumn"]


# --- Change page ------------------------------------------------------------------------------------------


def test_change_page_shows_readiness_and_upcoming_runs(admin_client, ready_campaign):
    _weekly(ready_campaign)
    page = admin_client.get(f"{CHANGELIST}{ready_campaign.pk}/change/").content.decode()
    assert 'data-can-send="true"' in page
    upcoming = page.split('class="upcoming-runs"')[1].split("</ul>")[0]
    assert upcoming.count("<li>") == 5
    assert "America/New_York)" in upcoming


def test_change_page_lists_what_an_incomplete_campaign_misses(admin_client, workspace):
    campaign = CampaignFactory(workspace=workspace, subject="", from_email="")
    page = admin_client.get(f"{CHANGELIST}{campaign.pk}/change/").content.decode()
    assert 'data-can-send="false"' in page
    missing = page.split('class="readiness-missing"')[1].split("</ul>")[0]
    assert [
        item in missing for item in ("<code>subject</code>", "<code>sender_email</code>", "<code>audience</code>")
    ] == [True, True, True]
    assert "<code>content</code>" not in missing


def test_change_page_shows_the_runs_of_the_campaign(admin_client, ready_campaign):
    CampaignRunFactory(campaign=ready_campaign, total=7, sent=7, failure_reason="nothing to see")
    page = admin_client.get(f"{CHANGELIST}{ready_campaign.pk}/change/").content.decode()
    assert "nothing to see" in page


def test_sending_campaign_change_page_is_read_only(admin_client, workspace):
    campaign = CampaignFactory(workspace=workspace, status=Campaign.Status.SENDING)
    response = admin_client.post(f"{CHANGELIST}{campaign.pk}/change/", _change_form_data(campaign, name="Renamed"))
    assert response.status_code == 403
    campaign.refresh_from_db()
    assert campaign.name != "Renamed"


# --- Saving through the services --------------------------------------------------------------------------


def test_campaign_is_created_in_the_admin_as_a_draft(admin_client, workspace, customers):
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {
            "workspace": str(workspace.pk),
            "name": "Launch",
            "subject": "Hi",
            "from_email": "news@mail.example.com",
            "html": "<p>Hi</p>",
            "include_labels": [str(customers.pk)],
            "tracking": json.dumps({"opens": False}),
        },
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Launch")
    assert (campaign.status, campaign.audience["include_labels"], campaign.tracking) == (
        "draft",
        [str(customers.pk)],
        {"opens": False, "clicks": True},
    )


def test_audience_label_of_another_workspace_is_a_form_error(admin_client, workspace, other_workspace):
    foreign = LabelFactory(workspace=other_workspace)
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {
            "workspace": str(workspace.pk),
            "name": "Launch",
            "include_labels": [str(foreign.pk)],
            "tracking": "",
        },
    )
    assert response.status_code == 200
    assert "Unknown label ids" in response.context["adminform"].form.errors["include_labels"][0]
    assert not Campaign.objects.exists()


def test_malformed_audience_is_a_form_error(admin_client, workspace):
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {
            "workspace": str(workspace.pk),
            "name": "Launch",
            "include_labels": ["nope"],
        },
    )
    assert response.status_code == 200
    assert "not a valid UUID" in response.context["adminform"].form.errors["include_labels"][0]


def test_template_syntax_error_is_a_form_error_on_the_field(admin_client, ready_campaign):
    response = admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/change/", _change_form_data(ready_campaign, html="{% for %}")
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["html"]
    ready_campaign.refresh_from_db()
    assert ready_campaign.html == "<p>Hello {{ first_name }}</p>"


def test_emptying_the_subject_of_a_scheduled_campaign_is_refused_with_its_code(admin_client, ready_campaign):
    _once(ready_campaign)
    response = admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/change/", _change_form_data(ready_campaign, subject="")
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors()[0].startswith("CAMPAIGN_NOT_READY:")
    ready_campaign.refresh_from_db()
    assert ready_campaign.subject == "Hello {{ first_name }}"


def test_edit_is_saved_and_status_cannot_be_posted(admin_client, ready_campaign):
    response = admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/change/",
        _change_form_data(ready_campaign, name="Summer sale", status="sent"),
    )
    assert response.status_code == 302
    ready_campaign.refresh_from_db()
    assert (ready_campaign.name, ready_campaign.status) == ("Summer sale", "draft")


# --- Schedule form ----------------------------------------------------------------------------------------


def test_schedule_form_schedules_at_the_wall_time_of_the_chosen_zone(admin_client, ready_campaign):
    response = admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/schedule/",
        {"schedule_type": "scheduled", "date": "2030-07-01", "time": "09:00", "timezone": "America/New_York"},
    )
    assert response.status_code == 302
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "scheduled"
    assert ready_campaign.next_run_at == datetime(2030, 7, 1, 13, 0, tzinfo=UTC)


def test_schedule_form_sets_a_recurring_schedule(admin_client, ready_campaign):
    admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/schedule/",
        {
            "schedule_type": "recurring",
            "frequency": "weekly",
            "interval": "2",
            "days_of_week": ["1", "3"],
            "time": "09:00",
            "timezone": "America/New_York",
            "end_date": "2031-12-31",
        },
    )
    ready_campaign.refresh_from_db()
    assert (ready_campaign.status, ready_campaign.recurring_config) == (
        "scheduled",
        {
            "frequency": "weekly",
            "interval": 2,
            "days_of_week": [1, 3],
            "time": "09:00",
            "time_zone": "America/New_York",
            "end_date": "2031-12-31",
        },
    )


def test_schedule_form_refuses_a_past_date_on_the_date_field(admin_client, ready_campaign):
    response = admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/schedule/",
        {"schedule_type": "scheduled", "date": "2020-01-01", "time": "09:00", "timezone": "UTC"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["date"] == ["scheduled_at: scheduled_at must be in the future."]
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "draft"


def test_schedule_form_refuses_a_weekly_schedule_without_days(admin_client, ready_campaign):
    response = admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/schedule/",
        {"schedule_type": "recurring", "frequency": "weekly", "time": "09:00", "timezone": "UTC"},
    )
    assert response.status_code == 200
    assert "days_of_week is required" in response.context["form"].errors["days_of_week"][0]


def test_scheduling_an_incomplete_campaign_shows_not_ready_with_the_missing_items(admin_client, workspace):
    campaign = CampaignFactory(workspace=workspace)
    response = admin_client.post(
        f"{CHANGELIST}{campaign.pk}/schedule/",
        {"schedule_type": "scheduled", "date": "2030-07-01", "time": "09:00", "timezone": "UTC"},
    )
    assert response.status_code == 200
    assert _messages(response) == [
        "CAMPAIGN_NOT_READY: The campaign is not ready to send: missing sender_email, audience."
    ]
    campaign.refresh_from_db()
    assert campaign.status == "draft"


def test_schedule_form_is_prefilled_with_the_current_schedule(admin_client, ready_campaign):
    _weekly(ready_campaign)
    form = admin_client.get(f"{CHANGELIST}{ready_campaign.pk}/schedule/").context["form"]
    assert (form["schedule_type"].value(), form["days_of_week"].value(), form["timezone"].value()) == (
        "recurring",
        [1, 3],
        "America/New_York",
    )


# --- Buttons on the change page ---------------------------------------------------------------------------


def test_send_now_starts_sending(admin_client, ready_campaign):
    response = _action(admin_client, ready_campaign, "send-now")
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "sending"
    assert CampaignRun.objects.filter(campaign=ready_campaign, trigger="now").count() == 1
    assert _messages(response) == ["Sending started."]


def test_cancel_schedule_returns_to_draft(admin_client, ready_campaign):
    _once(ready_campaign)
    _action(admin_client, ready_campaign, "cancel-schedule")
    ready_campaign.refresh_from_db()
    assert (ready_campaign.status, ready_campaign.next_run_at) == ("draft", None)


def test_cancel_schedule_of_a_draft_shows_the_error_code(admin_client, ready_campaign):
    response = _action(admin_client, ready_campaign, "cancel-schedule")
    assert response.status_code == 200
    assert _messages(response) == [
        "CAMPAIGN_NOT_CANCELLABLE: Only a scheduled campaign can be cancelled; this one is 'draft'."
    ]


def test_duplicate_creates_a_draft_copy_and_opens_it(admin_client, ready_campaign):
    _once(ready_campaign)
    response = _action(admin_client, ready_campaign, "duplicate")
    copy = Campaign.objects.get(name="Copy of Spring sale")
    assert (copy.status, copy.next_run_at) == ("draft", None)
    assert response.redirect_chain[-1][0] == f"{CHANGELIST}{copy.pk}/change/"


def test_pause_holds_a_sending_campaign(admin_client, workspace):
    campaign = CampaignFactory(workspace=workspace, status=Campaign.Status.SENDING)
    _action(admin_client, campaign, "pause")
    campaign.refresh_from_db()
    assert campaign.status == "paused"


def test_resume_continues_a_paused_campaign(admin_client, workspace):
    campaign = CampaignFactory(workspace=workspace, status=Campaign.Status.PAUSED)
    _action(admin_client, campaign, "resume")
    campaign.refresh_from_db()
    assert campaign.status == "sending"


def test_stop_cancels_a_sending_campaign(admin_client, workspace):
    campaign = CampaignFactory(workspace=workspace, status=Campaign.Status.SENDING)
    _action(admin_client, campaign, "stop")
    campaign.refresh_from_db()
    assert campaign.status == "cancelled"


def test_pause_of_a_draft_shows_the_error_code(admin_client, ready_campaign):
    response = _action(admin_client, ready_campaign, "pause")
    assert _messages(response) == ["CAMPAIGN_NOT_SENDING: Only a sending campaign can be paused; this one is 'draft'."]


def test_action_urls_refuse_get(admin_client, ready_campaign):
    assert admin_client.get(f"{CHANGELIST}{ready_campaign.pk}/send-now/").status_code == 405
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "draft"


def test_change_page_offers_the_buttons_of_its_status(admin_client, ready_campaign):
    _once(ready_campaign)
    page = admin_client.get(f"{CHANGELIST}{ready_campaign.pk}/change/").content.decode()
    offered = [
        name
        for name in ("send-now", "schedule", "cancel-schedule", "duplicate", "pause", "resume", "stop")
        if f'data-action="{name}"' in page
    ]
    assert offered == ["send-now", "schedule", "cancel-schedule", "duplicate"]


# --- Changelist actions -----------------------------------------------------------------------------------


def _changelist_action(admin_client, action: str, campaigns, **extra):
    return admin_client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(c.pk) for c in campaigns], **extra},
        follow=True,
    )


def test_bulk_cancel_schedule_reports_each_refusal_with_its_code(admin_client, ready_campaign, workspace):
    _once(ready_campaign)
    draft = CampaignFactory(workspace=workspace, name="Plain draft")
    response = _changelist_action(admin_client, "cancel_schedule", [ready_campaign, draft])
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "draft"
    assert sorted(_messages(response)) == [
        "Plain draft: CAMPAIGN_NOT_CANCELLABLE: Only a scheduled campaign can be cancelled; this one is 'draft'.",
        "Schedule cancelled: “Spring sale”.",
    ]


def test_bulk_schedule_shows_the_schedule_form_first(admin_client, ready_campaign):
    response = _changelist_action(admin_client, "schedule_selected", [ready_campaign])
    assert response.status_code == 200
    assert "form" in response.context and response.context["from_changelist"] is True
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "draft"


def test_bulk_schedule_applies_the_form(admin_client, ready_campaign):
    _changelist_action(
        admin_client,
        "schedule_selected",
        [ready_campaign],
        apply="1",
        schedule_type="scheduled",
        date="2030-07-01",
        time="09:00",
        timezone="UTC",
    )
    ready_campaign.refresh_from_db()
    assert (ready_campaign.status, ready_campaign.next_run_at) == (
        "scheduled",
        datetime(2030, 7, 1, 9, tzinfo=UTC),
    )


def test_bulk_duplicate_copies_each_selected_campaign(admin_client, ready_campaign):
    _changelist_action(admin_client, "duplicate", [ready_campaign])
    assert Campaign.objects.filter(name="Copy of Spring sale", status="draft").count() == 1


def test_bulk_send_now_starts_sending(admin_client, ready_campaign):
    _changelist_action(admin_client, "send_now", [ready_campaign])
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "sending"


def test_schedule_form_sets_the_scheduling_policies(admin_client, ready_campaign):
    admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/schedule/",
        {
            "schedule_type": "scheduled",
            "date": "2030-07-01",
            "time": "09:00",
            "timezone": "UTC",
            "max_lateness_minutes": "30",
            "quiet_hours_start": "21:00",
            "quiet_hours_end": "08:00",
        },
    )
    ready_campaign.refresh_from_db()
    assert (ready_campaign.max_lateness_minutes, ready_campaign.quiet_hours) == (30, {"start": "21:00", "end": "08:00"})


def test_schedule_form_refuses_half_a_quiet_window_on_its_field(admin_client, ready_campaign):
    response = admin_client.post(
        f"{CHANGELIST}{ready_campaign.pk}/schedule/",
        {
            "schedule_type": "scheduled",
            "date": "2030-07-01",
            "time": "09:00",
            "timezone": "UTC",
            "quiet_hours_start": "21:00",
        },
    )
    assert response.status_code == 200
    assert "required" in response.context["form"].errors["quiet_hours_end"][0]
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "draft"


def test_the_change_page_shows_a_missed_run_with_its_reason(admin_client, ready_campaign):
    CampaignRunFactory(
        campaign=ready_campaign, status="missed", failure_reason="missed: could not start until 9 minutes after"
    )
    page = admin_client.get(f"{CHANGELIST}{ready_campaign.pk}/change/").content.decode()
    assert "missed: could not start until 9 minutes after" in page and ">missed<" in page.lower().replace(" ", "")
