"""One content rule (delivery.content.has_body: html or text, more than white space): a template without
it and a campaign without it (nor a template) get the same answer from the API, the admin and the service."""

import json

import pytest
from django.contrib.messages import get_messages

from campaigns import services
from campaigns.errors import CampaignNotReady
from campaigns.models import Template
from common import errors
from delivery.content import has_body
from tests.factories import CampaignFactory, TemplateFactory

pytestmark = pytest.mark.django_db

NO_BODY = "A template needs html, text, or both."


@pytest.mark.parametrize(
    ("html", "text", "expected"),
    [("<p>x</p>", "", True), ("", "x", True), ("", "", False), (" \n\t", "  ", False), (None, None, False)],
)
def test_has_body(html, text, expected):
    assert has_body(html=html, text=text) is expected


# --- templates ------------------------------------------------------------------------------------------


def test_a_template_without_a_body_is_refused_alike_by_api_admin_and_service(api, admin_client, workspace):
    via_api = api.post("/api/v1/templates", {"name": "Empty", "subject": "Hi", "html": "  "}, format="json")
    via_admin = admin_client.post(
        "/admin/campaigns/template/add/",
        {"workspace": str(workspace.pk), "name": "Empty", "subject": "Hi", "html": "", "text": ""},
    )
    with pytest.raises(errors.ValidationError) as via_service:
        services.template_create(workspace=workspace, name="Empty", subject="Hi", html="  ", text="")

    assert via_api.json()["error"]["details"] == {"non_field_errors": [NO_BODY]}
    assert via_admin.context["adminform"].form.non_field_errors() == [NO_BODY]
    assert via_service.value.details == {"non_field_errors": [NO_BODY]}
    assert not Template.objects.exists()


# --- campaigns ------------------------------------------------------------------------------------------


@pytest.fixture
def bodiless(ready_campaign):
    """A campaign that is ready but for its content: no html, no text (white space only), no template."""
    ready_campaign.html, ready_campaign.text = "", " \n "
    ready_campaign.save()
    return ready_campaign


def test_sending_a_campaign_without_a_body_is_refused_alike(api, admin_client, bodiless):
    with pytest.raises(CampaignNotReady) as via_service:
        services.campaign_send_now(workspace=bodiless.workspace, campaign_id=bodiless.pk)
    via_api = api.post(f"/api/v1/campaigns/{bodiless.pk}/send")
    via_admin = admin_client.post(f"/admin/campaigns/campaign/{bodiless.pk}/send-now/", follow=True)

    expected = f"{via_service.value.code}: {via_service.value.message}"
    assert via_service.value.details == {"can_send": False, "missing": ["content"]}
    assert via_api.status_code == 422
    assert via_api.json()["error"]["details"] == via_service.value.details
    assert f"{via_api.json()['error']['code']}: {via_api.json()['error']['message']}" == expected
    assert [str(m) for m in get_messages(via_admin.wsgi_request)] == [expected]
    bodiless.refresh_from_db()
    assert bodiless.status == "draft"


def test_a_template_gives_a_campaign_its_body(api, bodiless, workspace):
    bodiless.template = TemplateFactory(workspace=workspace, html="<p>From the template</p>", text="")
    bodiless.save()
    readiness = api.get(f"/api/v1/campaigns/{bodiless.pk}/readiness").json()
    assert readiness == {"can_send": True, "missing": [], "warnings": []}


def test_emptying_a_scheduled_campaigns_body_is_refused_alike(api, admin_client, ready_campaign):
    services.campaign_schedule(
        workspace=ready_campaign.workspace,
        campaign_id=ready_campaign.pk,
        request=services.schedule_parse(scheduled_at="2030-07-01T09:00:00Z"),
    )
    with pytest.raises(CampaignNotReady) as via_service:
        services.campaign_update(
            workspace=ready_campaign.workspace, campaign_id=ready_campaign.pk, fields={"html": "", "text": ""}
        )
    via_api = api.patch(f"/api/v1/campaigns/{ready_campaign.pk}", {"html": "", "text": ""}, format="json")
    form = {
        "name": ready_campaign.name,
        "subject": ready_campaign.subject,
        "from_email": ready_campaign.from_email,
        "html": "",
        "text": "",
        **ready_campaign.audience,
        "tracking": json.dumps(ready_campaign.tracking),
    }
    via_admin = admin_client.post(f"/admin/campaigns/campaign/{ready_campaign.pk}/change/", form)

    expected = f"{via_service.value.code}: {via_service.value.message}"
    assert via_service.value.details["missing"] == ["content"]
    assert (via_api.status_code, via_api.json()["error"]["details"]) == (422, via_service.value.details)
    assert via_admin.context["adminform"].form.non_field_errors() == [expected]
    ready_campaign.refresh_from_db()
    assert ready_campaign.html == "<p>Hello {{ first_name }}</p>"


def test_the_admin_explains_a_missing_body_with_the_readiness_hint(admin_client, workspace):
    campaign = CampaignFactory(workspace=workspace, html="", text="")
    page = admin_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert "<code>content</code>: needs html, text or a template" in page


# --- deliverability: SPF/DMARC warnings and the complaint rate ---------------------------------------------


def _complaints(workspace, *, sent: int, complaints: int) -> None:
    from tests.factories import sent_and_complained

    sent_and_complained(workspace, sent=sent, complaints=complaints)


def test_spf_and_dmarc_warnings_of_the_sender_domain_show_in_readiness_and_send_plan(
    api, ready_campaign, verified_domain
):
    verified_domain.dns_checks = {
        "spf": {"status": "warning", "message": "No SPF record on mail.example.com."},
        "dmarc": {"status": "verified", "message": "DMARC policy p=none."},
    }
    verified_domain.save(update_fields=["dns_checks"])
    readiness = api.get(f"/api/v1/campaigns/{ready_campaign.pk}/readiness").json()
    plan = api.get(f"/api/v1/campaigns/{ready_campaign.pk}/send-plan").json()
    expected = [{"code": "spf", "message": "No SPF record on mail.example.com."}]
    assert (readiness["can_send"], readiness["warnings"]) == (True, expected)
    assert plan["warnings"] == expected


def test_complaint_rate_above_the_warning_threshold_warns_but_sends(api, ready_campaign, workspace):
    _complaints(workspace, sent=1000, complaints=2)
    readiness = api.get(f"/api/v1/campaigns/{ready_campaign.pk}/readiness").json()
    assert readiness["can_send"] is True
    assert [w["code"] for w in readiness["warnings"]] == ["complaint_rate"]


def test_complaint_rate_above_the_hold_threshold_refuses_send_with_422(api, ready_campaign, workspace):
    _complaints(workspace, sent=1000, complaints=4)
    response = api.post(f"/api/v1/campaigns/{ready_campaign.pk}/send")
    assert response.status_code == 422
    assert response.json()["error"]["details"]["missing"] == ["complaint_rate"]
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == "draft"
