"""Every campaign endpoint of docs/architecture.md#campaigns: its success and the §4 errors that apply to it."""

from datetime import UTC, datetime

import pytest
import time_machine

from campaigns.models import Campaign, CampaignRun
from tests.factories import CampaignFactory, CampaignRunFactory, ContactFactory, LabelFactory, SuppressionFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def url(campaign, action=""):
    return f"/api/v1/campaigns/{campaign.id}" + (f"/{action}" if action else "")


def error_code(response):
    return response.json()["error"]["code"]


# --- create, read, list -----------------------------------------------------------------------------------


def test_create_returns_201_draft_with_readiness(api, draft_payload, verified_domain):
    response = api.post("/api/v1/campaigns", draft_payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "draft"
    assert body["readiness"] == {"can_send": True, "missing": [], "warnings": []}
    assert body["progress"] == {"total": 0, "sent": 0, "failed": 0, "cancelled": 0, "pending": 0}
    assert body["schedule"] is None and body["upcoming_runs"] == []
    assert body["created_at"].endswith("Z")


def test_create_with_scheduled_at_schedules_a_ready_campaign(api, draft_payload, verified_domain):
    payload = {**draft_payload, "scheduled_at": "2026-07-01T09:00:00+07:00"}
    body = api.post("/api/v1/campaigns", payload, format="json").json()
    assert body["status"] == "scheduled"
    assert body["scheduled_at"] == "2026-07-01T02:00:00Z"
    assert body["next_run_at"] == "2026-07-01T02:00:00Z"
    assert body["upcoming_runs"] == ["2026-07-01T02:00:00Z"]


def test_create_with_schedule_but_not_ready_stays_draft(api, draft_payload):
    payload = {**draft_payload, "scheduled_at": "2026-07-01T09:00:00Z"}  # no verified sending domain
    body = api.post("/api/v1/campaigns", payload, format="json").json()
    assert body["status"] == "draft"
    assert body["readiness"] == {"can_send": False, "missing": ["sender_email"], "warnings": []}


def test_create_with_past_scheduled_at_is_400_and_stores_nothing(api, draft_payload, verified_domain):
    response = api.post("/api/v1/campaigns", {**draft_payload, "scheduled_at": "2026-05-01T09:00:00Z"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"scheduled_at": ["scheduled_at must be in the future."]}
    assert not Campaign.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("from_email", "not-an-email"),
        ("reply_to", "nope"),
        ("template", "not-a-uuid"),
        ("labels", ["not-a-uuid"]),
        ("audience", {"include_labels": "x"}),
        ("audience", {"everyone": True}),
        ("tracking", {"opens": "sometimes"}),
        ("substitution_data", ["a", "list"]),
        ("html", "{% if %}"),
        ("subject", "{{ unclosed"),
        ("status", "sent"),
        ("workspace", "other"),
    ],
)
def test_create_rejects_invalid_field(api, draft_payload, field, value):
    response = api.post("/api/v1/campaigns", {**draft_payload, field: value}, format="json")
    assert response.status_code == 400, response.json()
    assert error_code(response) == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    assert not Campaign.objects.exists()


def test_create_rejects_another_workspaces_label_in_audience(api, draft_payload, other_workspace):
    foreign = LabelFactory(workspace=other_workspace)
    payload = {**draft_payload, "audience": {"include_labels": [str(foreign.id)]}}
    response = api.post("/api/v1/campaigns", payload, format="json")
    assert response.status_code == 400
    assert "audience.include_labels" in response.json()["error"]["details"]


def test_template_syntax_error_names_the_line(api, draft_payload):
    response = api.post("/api/v1/campaigns", {**draft_payload, "html": "<p>ok</p>\n{{ broken"}, format="json")
    assert "line 2" in response.json()["error"]["details"]["html"][0]


def test_get_returns_the_campaign_bare(api, ready_campaign):
    body = api.get(url(ready_campaign)).json()
    assert body["id"] == str(ready_campaign.id)
    assert body["name"] == "Spring sale"


def test_list_filters_by_status_category_and_label(api, workspace):
    tag = LabelFactory(workspace=workspace)
    CampaignFactory(workspace=workspace, status=Campaign.Status.SENT, category="news")
    tagged = CampaignFactory(workspace=workspace, category="promo")
    tagged.labels.set([tag])
    assert api.get("/api/v1/campaigns?status=sent").json()["count"] == 1
    assert api.get("/api/v1/campaigns?category=promo").json()["results"][0]["id"] == str(tagged.id)
    assert api.get(f"/api/v1/campaigns?label={tag.id}").json()["count"] == 1


def test_a_list_item_is_the_campaign_as_get_answers_it(api, ready_campaign, workspace):
    # The list reads labels, schedules and summaries for the whole page at once; GET reads one campaign.
    ready_campaign.labels.set([LabelFactory(workspace=workspace, name=n) for n in ("zeta", "alpha", "mid")])
    api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    CampaignFactory(workspace=workspace)
    listed = {item["id"]: item for item in api.get("/api/v1/campaigns").json()["results"]}
    one = api.get(url(ready_campaign)).json()
    assert listed[str(ready_campaign.id)] == one
    assert one["schedule"]["scheduled_at"] == "2026-07-01T09:00:00Z"
    assert len(one["labels"]) == 3


def test_list_rejects_unknown_status_filter(api):
    response = api.get("/api/v1/campaigns?status=bogus")
    assert response.status_code == 400
    assert error_code(response) == "VALIDATION_ERROR"


# --- workspace isolation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "action"),
    [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "send"),
        ("post", "schedule"),
        ("post", "cancel-schedule"),
        ("post", "pause"),
        ("post", "resume"),
        ("post", "stop"),
        ("post", "duplicate"),
        ("post", "count-recipient"),
        ("get", "preview"),
        ("get", "readiness"),
        ("get", "send-plan"),
        ("get", "runs"),
    ],
)
def test_another_workspaces_campaign_is_404(other_api, ready_campaign, method, action):
    body = {"scheduled_at": "2026-07-01T09:00:00Z"} if action == "schedule" else {}
    response = getattr(other_api, method)(url(ready_campaign, action), body, format="json")
    assert response.status_code == 404
    assert error_code(response) == "RESOURCE_NOT_FOUND"


def test_another_workspaces_campaign_is_never_listed(other_api, ready_campaign):
    assert other_api.get("/api/v1/campaigns").json()["count"] == 0


def test_unauthenticated_is_401(anon, ready_campaign):
    response = anon.post(url(ready_campaign, "send"))
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHENTICATED"


# --- schedule -------------------------------------------------------------------------------------------


def test_schedule_with_offset(api, ready_campaign):
    response = api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["schedule"]["schedule_type"] == "scheduled"
    assert body["scheduled_at"] == "2026-07-01T09:00:00Z"


def test_schedule_naive_time_with_timezone_is_that_wall_clock(api, ready_campaign):
    payload = {"schedule_type": "scheduled", "scheduled_at": "2026-07-01T09:00:00", "timezone": "Asia/Jakarta"}
    body = api.post(url(ready_campaign, "schedule"), payload, format="json").json()
    assert body["scheduled_at"] == "2026-07-01T02:00:00Z"
    assert body["schedule"]["timezone"] == "Asia/Jakarta"


def test_reschedule_moves_the_time(api, ready_campaign):
    api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    body = api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-02T10:00:00Z"}, format="json").json()
    assert body["status"] == "scheduled"
    assert body["next_run_at"] == "2026-07-02T10:00:00Z"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"scheduled_at": "2026-07-01T09:00:00"}, "scheduled_at"),
        ({"scheduled_at": "2026-06-01T11:59:59Z"}, "scheduled_at"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"scheduled_at": "2026-07-01T09:00:00", "timezone": "Mars/Olympus"}, "timezone"),
        ({"scheduled_at": "2026-03-08T02:30:00", "timezone": "America/New_York"}, "scheduled_at"),
        ({"schedule_type": "weekly"}, "schedule_type"),
        ({}, "schedule_type"),
        (
            {
                "schedule_type": "recurring",
                "recurring_config": {"frequency": "weekly", "time": "09:00", "time_zone": "UTC"},
            },
            "recurring_config.days_of_week",
        ),
        (
            {
                "schedule_type": "recurring",
                "recurring_config": {"frequency": "monthly", "day_of_month": 32, "time": "09:00", "time_zone": "UTC"},
            },
            "recurring_config.day_of_month",
        ),
        (
            {
                "schedule_type": "recurring",
                "recurring_config": {"frequency": "daily", "interval": 0, "time": "09:00", "time_zone": "UTC"},
            },
            "recurring_config.interval",
        ),
        (
            {
                "schedule_type": "recurring",
                "recurring_config": {"frequency": "daily", "time": "25:00", "time_zone": "UTC"},
            },
            "recurring_config.time",
        ),
        (
            {
                "schedule_type": "recurring",
                "recurring_config": {
                    "frequency": "daily",
                    "time": "09:00",
                    "time_zone": "UTC",
                    "end_date": "2026-05-01",
                },
            },
            "recurring_config.end_date",
        ),
        (
            {"scheduled_at": "2026-07-01T09:00:00Z", "send_time_optimization": {"window_hours": 73}},
            "send_time_optimization.window_hours",
        ),
        (
            {"scheduled_at": "2026-07-01T09:00:00Z", "send_time_optimization": {"window_hours": 0}},
            "send_time_optimization.window_hours",
        ),
        ({"scheduled_at": "2026-07-01T09:00:00Z", "colour": "red"}, "colour"),
    ],
)
def test_invalid_schedule_is_400_naming_the_field_and_changes_nothing(api, ready_campaign, payload, field):
    response = api.post(url(ready_campaign, "schedule"), payload, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"], response.json()
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "draft" and ready_campaign.next_run_at is None


def test_recurring_schedule_lists_upcoming_runs_across_dst(api, ready_campaign):
    config = {
        "frequency": "weekly",
        "interval": 1,
        "days_of_week": [1],
        "time": "09:00",
        "time_zone": "America/New_York",
    }
    with time_machine.travel(datetime(2026, 10, 20, tzinfo=UTC), tick=False):
        body = api.post(
            url(ready_campaign, "schedule"), {"schedule_type": "recurring", "recurring_config": config}, format="json"
        ).json()
    assert body["status"] == "scheduled"
    # Mondays at 09:00 New York: EDT (13:00Z) until 1 November, EST (14:00Z) after.
    assert body["upcoming_runs"][:3] == ["2026-10-26T13:00:00Z", "2026-11-02T14:00:00Z", "2026-11-09T14:00:00Z"]
    assert body["next_run_at"] == "2026-10-26T13:00:00Z"


def test_send_time_optimization_and_local_time_are_stored(api, ready_campaign):
    payload = {
        "scheduled_at": "2026-07-01T09:00:00Z",
        "send_time_optimization": {"window_hours": 24},
        "recipient_local_time": True,
    }
    schedule = api.post(url(ready_campaign, "schedule"), payload, format="json").json()["schedule"]
    assert schedule["send_time_optimization"] == {"window_hours": 24, "holdout_percent": 0}
    assert schedule["recipient_local_time"] is True


def test_immediate_returns_a_scheduled_campaign_to_draft(api, ready_campaign):
    api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    body = api.post(url(ready_campaign, "schedule"), {"schedule_type": "immediate"}, format="json").json()
    assert body["status"] == "draft"
    assert body["schedule"] is None and body["next_run_at"] is None


def test_schedule_of_an_unready_campaign_is_422_with_the_report(api, workspace):
    campaign = CampaignFactory(workspace=workspace, subject="", html="", text="", from_email="")
    response = api.post(url(campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "CAMPAIGN_NOT_READY"
    assert error["details"] == {"can_send": False, "missing": ["subject", "sender_email", "content", "audience"]}


@pytest.mark.parametrize("status", ["sending", "sent", "paused", "reported", "cancelled"])
def test_schedule_from_a_status_that_cannot_start_is_409(api, ready_campaign, status):
    Campaign.objects.filter(pk=ready_campaign.pk).update(status=status)
    response = api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    assert response.status_code == 409
    assert error_code(response) == "CAMPAIGN_NOT_SENDABLE"


# --- send now, create-send ------------------------------------------------------------------------------


def test_send_now_moves_to_sending_and_creates_a_run(api, ready_campaign):
    response = api.post(url(ready_campaign, "send"))
    assert response.status_code == 200
    assert response.json()["status"] == "sending"
    run = CampaignRun.objects.get(campaign=ready_campaign)
    assert run.status == "pending" and run.trigger == "now" and run.due_at == NOW


def test_send_now_of_a_failed_campaign_is_allowed(api, ready_campaign):
    Campaign.objects.filter(pk=ready_campaign.pk).update(status="failed")
    assert api.post(url(ready_campaign, "send")).json()["status"] == "sending"


def test_send_now_twice_is_409_the_second_time(api, ready_campaign):
    api.post(url(ready_campaign, "send"))
    response = api.post(url(ready_campaign, "send"))
    assert response.status_code == 409
    assert error_code(response) == "CAMPAIGN_NOT_SENDABLE"
    assert CampaignRun.objects.filter(campaign=ready_campaign).count() == 1


def test_send_now_with_only_suppressed_recipients_is_422_audience(api, ready_campaign, customers, workspace):
    for contact in customers.contacts.all():
        SuppressionFactory(workspace=workspace, email=contact.email)
    response = api.post(url(ready_campaign, "send"))
    assert response.status_code == 422
    assert response.json()["error"]["details"]["missing"] == ["audience"]


def test_create_send_creates_and_sends(api, draft_payload, verified_domain):
    response = api.post("/api/v1/campaigns/create-send", draft_payload, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "sending"
    assert CampaignRun.objects.count() == 1


def test_create_send_of_an_unready_campaign_is_422_and_stores_nothing(api, draft_payload):
    response = api.post("/api/v1/campaigns/create-send", draft_payload, format="json")
    assert response.status_code == 422
    assert not Campaign.objects.exists()


# --- cancel, pause, resume, stop ------------------------------------------------------------------------


def test_cancel_schedule_returns_to_draft(api, ready_campaign):
    api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    body = api.post(url(ready_campaign, "cancel-schedule")).json()
    assert body["status"] == "draft" and body["scheduled_at"] is None


@pytest.mark.parametrize("status", ["draft", "sending", "sent"])
def test_cancel_schedule_when_not_scheduled_is_409(api, ready_campaign, status):
    Campaign.objects.filter(pk=ready_campaign.pk).update(status=status)
    response = api.post(url(ready_campaign, "cancel-schedule"))
    assert response.status_code == 409
    assert error_code(response) == "CAMPAIGN_NOT_CANCELLABLE"


def test_pause_and_resume(api, ready_campaign):
    api.post(url(ready_campaign, "send"))
    assert api.post(url(ready_campaign, "pause")).json()["status"] == "paused"
    assert api.post(url(ready_campaign, "resume")).json()["status"] == "sending"


def test_pause_of_a_draft_is_409(api, ready_campaign):
    response = api.post(url(ready_campaign, "pause"))
    assert response.status_code == 409
    assert error_code(response) == "CAMPAIGN_NOT_SENDING"


def test_resume_of_a_sending_campaign_is_409(api, ready_campaign):
    api.post(url(ready_campaign, "send"))
    response = api.post(url(ready_campaign, "resume"))
    assert response.status_code == 409
    assert error_code(response) == "CAMPAIGN_NOT_PAUSED"


def test_stop_cancels_the_remaining_recipients_and_keeps_the_sent(api, ready_campaign):
    from delivery.models import Delivery
    from tests.factories import DeliveryFactory

    Campaign.objects.filter(pk=ready_campaign.pk).update(status="sending")
    run = CampaignRunFactory(campaign=ready_campaign, status="sending")
    sent = DeliveryFactory(run=run, status="sent")
    queued = DeliveryFactory(run=run, status="queued")
    body = api.post(url(ready_campaign, "stop")).json()
    assert body["status"] == "cancelled"
    assert Delivery.objects.get(pk=sent.pk).status == "sent"
    assert Delivery.objects.get(pk=queued.pk).status == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_stop_of_a_draft_is_409(api, ready_campaign):
    assert error_code(api.post(url(ready_campaign, "stop"))) == "CAMPAIGN_NOT_SENDING"


# --- edit and delete ------------------------------------------------------------------------------------


def test_patch_edits_a_draft(api, ready_campaign):
    body = api.patch(url(ready_campaign), {"subject": "New subject"}, format="json").json()
    assert body["subject"] == "New subject"


@pytest.mark.parametrize("status", ["sending", "sent", "reported", "paused"])
def test_patch_of_a_campaign_past_scheduling_is_409(api, ready_campaign, status):
    Campaign.objects.filter(pk=ready_campaign.pk).update(status=status)
    response = api.patch(url(ready_campaign), {"subject": "Too late"}, format="json")
    assert response.status_code == 409
    assert error_code(response) == "CAMPAIGN_NOT_EDITABLE"
    ready_campaign.refresh_from_db()
    assert ready_campaign.subject != "Too late"


def test_patch_that_would_make_a_scheduled_campaign_unready_is_422(api, ready_campaign):
    api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    response = api.patch(url(ready_campaign), {"subject": ""}, format="json")
    assert response.status_code == 422
    ready_campaign.refresh_from_db()
    assert ready_campaign.subject and ready_campaign.status == "scheduled"


def test_patch_reports_header_and_template_problems_in_one_400_and_changes_nothing(api, ready_campaign):
    response = api.patch(
        url(ready_campaign), {"from_name": "Shop\r\nBcc: everyone@example.org", "html": "{% for %}"}, format="json"
    )
    assert response.status_code == 400
    assert sorted(response.json()["error"]["details"]) == ["from_name", "html"]
    ready_campaign.refresh_from_db()
    assert (ready_campaign.from_name, ready_campaign.html) == ("News", "<p>Hello {{ first_name }}</p>")


def test_patch_cannot_write_status(api, ready_campaign):
    response = api.patch(url(ready_campaign), {"status": "sent"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"status": ["Unknown field."]}


def test_delete_a_draft(api, ready_campaign):
    assert api.delete(url(ready_campaign)).status_code == 204
    assert not Campaign.objects.filter(pk=ready_campaign.pk).exists()


def test_delete_a_scheduled_campaign_is_409(api, ready_campaign):
    api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    response = api.delete(url(ready_campaign))
    assert response.status_code == 409
    assert error_code(response) == "CAMPAIGN_NOT_EDITABLE"
    assert Campaign.objects.filter(pk=ready_campaign.pk).exists()


# --- duplicate, count, preview, readiness, send-plan, runs ------------------------------------------------


def test_duplicate_makes_a_new_draft_without_schedule(api, ready_campaign, workspace):
    tag = LabelFactory(workspace=workspace)
    ready_campaign.labels.set([tag])
    api.post(url(ready_campaign, "schedule"), {"scheduled_at": "2026-07-01T09:00:00Z"}, format="json")
    response = api.post(url(ready_campaign, "duplicate"))
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != str(ready_campaign.id)
    assert body["name"] == "Copy of Spring sale"
    assert body["status"] == "draft" and body["schedule"] is None
    assert body["labels"] == [str(tag.id)]
    assert body["audience"] == ready_campaign.audience


def test_count_recipient_excludes_unsubscribed_and_suppressed(api, ready_campaign, customers, workspace):
    ContactFactory(workspace=workspace, labels=[customers], status="unsubscribed")
    SuppressionFactory(workspace=workspace, email=customers.contacts.first().email)
    assert api.post(url(ready_campaign, "count-recipient")).json() == {"count": 2}


def test_preview_renders_for_a_contact(api, ready_campaign, workspace):
    contact = ContactFactory(workspace=workspace, first_name="Ann")
    body = api.get(url(ready_campaign, "preview") + f"?contact_id={contact.id}").json()
    assert body["subject"] == "Hello Ann"
    assert body["html"] == "<p>Hello Ann</p>"


def test_preview_without_contact_uses_sample_data(api, ready_campaign):
    assert api.get(url(ready_campaign, "preview")).json()["subject"] == "Hello Jane"


def test_preview_escapes_html_in_contact_fields(api, ready_campaign, workspace):
    contact = ContactFactory(workspace=workspace, first_name="<script>")
    assert "&lt;script&gt;" in api.get(url(ready_campaign, "preview") + f"?contact_id={contact.id}").json()["html"]


def test_preview_with_another_workspaces_contact_is_400(api, ready_campaign, other_workspace):
    contact = ContactFactory(workspace=other_workspace)
    response = api.get(url(ready_campaign, "preview") + f"?contact_id={contact.id}")
    assert response.status_code == 400
    assert "contact_id" in response.json()["error"]["details"]


def test_preview_of_a_template_that_would_build_gigabytes_is_400_naming_the_field(api, ready_campaign):
    # Stored before the limits existed (the factory skips the save-time checks), refused at render time.
    ready_campaign.html = "<p>{{ 'a'.center(2000000000) }}</p>"
    ready_campaign.save()
    response = api.get(url(ready_campaign, "preview"))
    refusal = "'center' would build 2000000000 characters; a template may build at most 5000000 at once."
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "VALIDATION_ERROR", "message": f"html: {refusal}", "details": {"html": [refusal]}}
    }


def test_preview_of_a_template_that_runs_too_long_is_400_naming_the_field(api, ready_campaign, settings):
    settings.TEMPLATE_RENDER_MAX_STEPS = 10_000
    ready_campaign.subject = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    ready_campaign.save()
    response = api.get(url(ready_campaign, "preview"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"] == {
        "subject": ["The template took too long to render: more than 10000 steps (loop iterations, calls and filters)."]
    }


def test_readiness_endpoint(api, workspace):
    campaign = CampaignFactory(workspace=workspace, subject="")
    assert api.get(url(campaign, "readiness")).json() == {
        "can_send": False,
        "missing": ["subject", "sender_email", "audience"],
        "warnings": [],
    }


def test_readiness_treats_an_unverified_sender_domain_as_missing(api, ready_campaign, verified_domain):
    verified_domain.verified = False
    verified_domain.save()
    assert api.get(url(ready_campaign, "readiness")).json()["missing"] == ["sender_email"]


def test_readiness_uses_the_template_for_subject_and_content(api, ready_campaign, workspace):
    from tests.factories import TemplateFactory

    ready_campaign.subject = ready_campaign.html = ready_campaign.text = ""
    ready_campaign.template = TemplateFactory(workspace=workspace)
    ready_campaign.save()
    assert api.get(url(ready_campaign, "readiness")).json() == {"can_send": True, "missing": [], "warnings": []}


def test_send_plan_before_launch_gives_local_times_with_reasons(api, ready_campaign, customers, workspace):
    ContactFactory(workspace=workspace, labels=[customers], timezone="Asia/Tokyo")
    payload = {"scheduled_at": "2026-07-01T09:00:00", "timezone": "Europe/London", "recipient_local_time": True}
    api.post(url(ready_campaign, "schedule"), payload, format="json")
    plan = api.get(url(ready_campaign, "send-plan")).json()
    assert plan["source"] == "plan" and plan["total"] == 4
    # 09:00 in Tokyo is 00:00Z; the three contacts without a zone use the workspace's (UTC): 09:00Z.
    assert plan["per_hour"] == {"2026-07-01T00:00:00Z": 1, "2026-07-01T09:00:00Z": 3}
    tokyo = [s for s in plan["sample"] if "Asia/Tokyo" in s["reason"]]
    assert tokyo[0]["send_at"] == "2026-07-01T00:00:00Z"


def test_runs_lists_each_send(api, ready_campaign):
    CampaignRunFactory(campaign=ready_campaign, status="sent", total=3, sent=3)
    body = api.get(url(ready_campaign, "runs")).json()
    assert body["count"] == 1
    assert body["results"][0]["total"] == 3


def test_create_with_a_recurring_schedule_object(api, draft_payload, verified_domain):
    schedule = {
        "schedule_type": "recurring",
        "recurring_config": {"frequency": "daily", "time": "09:00", "time_zone": "Europe/London"},
    }
    body = api.post("/api/v1/campaigns", {**draft_payload, "schedule": schedule}, format="json").json()
    assert body["status"] == "scheduled"
    assert body["schedule"]["schedule_type"] == "recurring"
    assert body["upcoming_runs"][:2] == ["2026-06-02T08:00:00Z", "2026-06-03T08:00:00Z"]


def test_create_with_both_scheduled_at_and_schedule_is_400(api, draft_payload):
    payload = {**draft_payload, "scheduled_at": "2026-07-01T09:00:00Z", "schedule": {"schedule_type": "immediate"}}
    response = api.post("/api/v1/campaigns", payload, format="json")
    assert response.status_code == 400
    assert "scheduled_at" in response.json()["error"]["details"]


def test_list_costs_the_same_queries_for_one_or_many_campaigns(
    api, ready_campaign, workspace, django_assert_max_num_queries
):
    for _ in range(30):
        CampaignFactory(workspace=workspace, audience=ready_campaign.audience)
    CampaignRunFactory(campaign=ready_campaign, status="sent", total=3, sent=3)
    # Readiness adds one query per page, not per campaign: the workspace's complaint rate (then cached).
    with django_assert_max_num_queries(11):
        body = api.get("/api/v1/campaigns?page_size=50").json()
    assert body["count"] == 31
    listed = {c["id"]: c for c in body["results"]}
    assert listed[str(ready_campaign.id)]["progress"] == {
        "total": 3,
        "sent": 3,
        "failed": 0,
        "cancelled": 0,
        "pending": 0,
    }
    assert all(c["readiness"]["can_send"] for c in body["results"])
