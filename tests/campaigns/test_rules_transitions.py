"""One table decides which actions a campaign's status allows (Campaign.TRANSITIONS): the services, the API
and the admin (its buttons, its edit and delete pages, its actions) all give the table's answer."""

import json

import pytest
from django.contrib.messages import get_messages

from campaigns import services
from campaigns.admin import BUTTONS
from campaigns.models import Campaign
from common import errors

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/campaigns/campaign/"
STATUSES = list(Campaign.Status)
ONCE = {"scheduled_at": "2030-07-01T09:00:00Z"}


@pytest.fixture
def campaign_in(ready_campaign):
    """The ready campaign, put straight into a status (as the engine would leave it)."""

    def put(status: str) -> Campaign:
        Campaign.objects.filter(pk=ready_campaign.pk).update(status=status)
        ready_campaign.refresh_from_db()
        return ready_campaign

    return put


def _allowed(status: str, action: str) -> bool:
    return Campaign(status=status).can_transition(action)


# One call of each action's service. "immediate" (clear the schedule) is the schedule action too.
SERVICE_CALLS = {
    "edit": lambda c: services.campaign_update(workspace=c.workspace, campaign_id=c.pk, fields={"name": "Renamed"}),
    "delete": lambda c: services.campaign_delete(workspace=c.workspace, campaign_id=c.pk),
    "send-now": lambda c: services.campaign_send_now(workspace=c.workspace, campaign_id=c.pk),
    "schedule": lambda c: services.campaign_schedule(
        workspace=c.workspace, campaign_id=c.pk, request=services.schedule_parse(**ONCE)
    ),
    "schedule (immediate)": lambda c: services.campaign_schedule(
        workspace=c.workspace, campaign_id=c.pk, request=services.schedule_parse(schedule_type="immediate")
    ),
    "cancel-schedule": lambda c: services.campaign_cancel_schedule(workspace=c.workspace, campaign_id=c.pk),
    "pause": lambda c: services.campaign_pause(workspace=c.workspace, campaign_id=c.pk),
    "resume": lambda c: services.campaign_resume(workspace=c.workspace, campaign_id=c.pk),
    "stop": lambda c: services.campaign_stop(workspace=c.workspace, campaign_id=c.pk),
    "duplicate": lambda c: services.campaign_duplicate(workspace=c.workspace, campaign_id=c.pk),
}

# The same actions through the API: method, path after the campaign's URL, body.
API_CALLS = {
    "edit": ("patch", "", {"name": "Renamed"}),
    "delete": ("delete", "", None),
    "send-now": ("post", "/send", None),
    "schedule": ("post", "/schedule", ONCE),
    "schedule (immediate)": ("post", "/schedule", {"schedule_type": "immediate"}),
    "cancel-schedule": ("post", "/cancel-schedule", None),
    "pause": ("post", "/pause", None),
    "resume": ("post", "/resume", None),
    "stop": ("post", "/stop", None),
    "duplicate": ("post", "/duplicate", None),
}


def _table_action(case: str) -> str:
    return case.split(" ")[0]


def test_every_action_of_the_table_is_covered_here():
    assert {_table_action(case) for case in SERVICE_CALLS} == set(Campaign.TRANSITIONS)
    assert set(API_CALLS) == set(SERVICE_CALLS)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("case", list(SERVICE_CALLS))
def test_the_service_allows_exactly_what_the_table_allows(campaign_in, status, case):
    campaign = campaign_in(status)
    if _allowed(status, _table_action(case)):
        SERVICE_CALLS[case](campaign)
    else:
        with pytest.raises(errors.ApplicationError) as refused:
            SERVICE_CALLS[case](campaign)
        assert (refused.value.status, refused.value.details["status"]) == (409, status)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("case", list(API_CALLS))
def test_the_api_allows_exactly_what_the_table_allows(api, campaign_in, status, case):
    campaign = campaign_in(status)
    method, suffix, body = API_CALLS[case]
    response = getattr(api, method)(f"/api/v1/campaigns/{campaign.pk}{suffix}", body, format="json")
    if _allowed(status, _table_action(case)):
        assert response.status_code in (200, 201, 204), response.content
    else:
        assert response.status_code == 409, response.content
        assert response.json()["error"]["details"]["status"] == status


# --- the admin --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", STATUSES)
def test_the_admin_offers_exactly_the_buttons_the_table_allows(admin_client, campaign_in, status):
    campaign = campaign_in(status)
    page = admin_client.get(f"{CHANGELIST}{campaign.pk}/change/").content.decode()
    offered = [name for name in BUTTONS if f'data-action="{name}"' in page]
    assert offered == [name for name in BUTTONS if _allowed(status, name)]
    assert offered == [name for name in campaign.allowed_actions() if name in BUTTONS]


@pytest.mark.parametrize("status", STATUSES)
def test_the_admin_edits_and_deletes_exactly_where_the_table_allows(admin_client, campaign_in, status):
    campaign = campaign_in(status)
    form = {
        "name": "Renamed",
        "subject": campaign.subject,
        "from_email": campaign.from_email,
        "html": campaign.html,
        "text": campaign.text,
        **campaign.audience,
        "tracking": json.dumps(campaign.tracking),
    }
    edit = admin_client.post(f"{CHANGELIST}{campaign.pk}/change/", form)
    assert edit.status_code == (302 if _allowed(status, "edit") else 403)
    delete_page = admin_client.get(f"{CHANGELIST}{campaign.pk}/delete/")
    assert delete_page.status_code == (200 if _allowed(status, "delete") else 403)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ["send-now", "cancel-schedule", "pause", "resume", "stop", "duplicate"])
def test_an_admin_action_succeeds_exactly_where_the_table_allows(admin_client, campaign_in, status, action):
    campaign = campaign_in(status)
    response = admin_client.post(f"{CHANGELIST}{campaign.pk}/{action}/", follow=True)
    levels = [message.level_tag for message in get_messages(response.wsgi_request)]
    assert levels == (["success"] if _allowed(status, action) else ["error"])


def test_the_refusals_name_the_statuses_of_the_table():
    from campaigns.errors import CampaignNotEditable, CampaignNotSendable

    assert CampaignNotSendable(status="sent").message.endswith(
        "only draft, failed and scheduled campaigns can."
    ) and Campaign.TRANSITIONS["send-now"] == ("draft", "failed", "scheduled")
    assert CampaignNotEditable(status="sent").message.endswith(
        "only draft, scheduled or failed campaigns can."
    ) and Campaign.TRANSITIONS["edit"] == ("draft", "scheduled", "failed")
