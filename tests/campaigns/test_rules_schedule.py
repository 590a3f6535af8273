"""The ranges of a schedule (interval, day of month, STO window) are schedule_parse's: the API and the admin's
schedule form give its answer, the form on the field it is about."""

import pytest

from campaigns import services
from campaigns.scheduling import MAX_INTERVAL
from common import errors

pytestmark = pytest.mark.django_db

ONCE_API = {"scheduled_at": "2030-07-01T09:00:00Z"}
ONCE_FORM = {"schedule_type": "scheduled", "date": "2030-07-01", "time": "09:00", "timezone": "UTC"}
RECURRING_API = {"frequency": "monthly", "day_of_month": 1, "time": "09:00", "time_zone": "UTC"}
RECURRING_FORM = {"schedule_type": "recurring", "frequency": "monthly", "day_of_month": "1", "time": "09:00",
                  "timezone": "UTC"}

# (API body, service kwargs, admin form data, the service's error key, the form field it lands on, message)
CASES = {
    "sto window too long": (
        {**ONCE_API, "send_time_optimization": {"window_hours": 73}},
        {**ONCE_API, "send_time_optimization": {"window_hours": 73}},
        {**ONCE_FORM, "sto_window_hours": "73"},
        "send_time_optimization.window_hours",
        "sto_window_hours",
        "window_hours must be a whole number of hours from 1 to 72.",
    ),
    "sto window of zero": (
        {**ONCE_API, "send_time_optimization": {"window_hours": 0}},
        {**ONCE_API, "send_time_optimization": {"window_hours": 0}},
        {**ONCE_FORM, "sto_window_hours": "0"},
        "send_time_optimization.window_hours",
        "sto_window_hours",
        "window_hours must be a whole number of hours from 1 to 72.",
    ),
    "interval of zero": (
        {"recurring_config": {**RECURRING_API, "interval": 0}},
        {"recurring_config": {**RECURRING_API, "interval": 0}},
        {**RECURRING_FORM, "interval": "0"},
        "recurring_config.interval",
        "interval",
        f"interval must be a whole number from 1 to {MAX_INTERVAL}.",
    ),
    "day of month past 31": (
        {"recurring_config": {**RECURRING_API, "day_of_month": 32}},
        {"recurring_config": {**RECURRING_API, "day_of_month": 32}},
        {**RECURRING_FORM, "day_of_month": "32"},
        "recurring_config.day_of_month",
        "day_of_month",
        "day_of_month must be a whole number from 1 to 31.",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_schedule_out_of_range_is_refused_alike(api, admin_client, ready_campaign, case):
    api_body, service_kwargs, form_data, key, form_field, message = CASES[case]

    with pytest.raises(errors.ValidationError) as via_service:
        services.schedule_parse(**service_kwargs)
    via_api = api.post(f"/api/v1/campaigns/{ready_campaign.pk}/schedule", api_body, format="json")
    via_admin = admin_client.post(f"/admin/campaigns/campaign/{ready_campaign.pk}/schedule/", form_data)

    assert via_service.value.details == {key: [message]}
    assert (via_api.status_code, via_api.json()["error"]["details"]) == (400, {key: [message]})
    assert via_admin.status_code == 200
    assert via_admin.context["form"].errors[form_field] == [f"{key}: {message}"]
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "draft"


def test_the_edges_of_the_ranges_are_accepted_by_the_admin_form(admin_client, ready_campaign):
    response = admin_client.post(
        f"/admin/campaigns/campaign/{ready_campaign.pk}/schedule/",
        {**RECURRING_FORM, "day_of_month": "31", "interval": str(MAX_INTERVAL), "sto_window_hours": "72"},
    )
    assert response.status_code == 302
    ready_campaign.refresh_from_db()
    assert (ready_campaign.recurring_config["day_of_month"], ready_campaign.send_time_optimization) == (
        31,
        {"window_hours": 72, "holdout_percent": 0},
    )
