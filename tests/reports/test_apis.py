"""The report endpoints: figures, status codes, the envelope, and tenant isolation."""

import pytest

from tests.factories import CampaignRunFactory, LabelFactory
from tests.reports.conftest import URL1

pytestmark = pytest.mark.django_db


def test_basic_answers_the_figures(api, known):
    response = api.get("/api/v1/reports/basic", {"campaign_id": str(known.campaign.pk)})
    assert response.status_code == 200
    body = response.json()
    assert (body["campaign_id"], body["run_id"]) == (str(known.campaign.pk), None)
    assert (body["sent"], body["unique_opens"], body["machine_opens"], body["open_rate"]) == (5, 4, 2, 0.8)


def test_basic_of_one_run(api, known):
    response = api.get("/api/v1/reports/basic", {"campaign_id": str(known.campaign.pk), "run_id": str(known.run.pk)})
    assert (response.status_code, response.json()["run_id"], response.json()["clicks"]) == (200, str(known.run.pk), 5)


def test_basic_without_campaign_id_is_a_400_naming_it(api):
    response = api.get("/api/v1/reports/basic")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "campaign_id" in response.json()["error"]["details"]


def test_a_malformed_campaign_id_is_a_400(api):
    response = api.get("/api/v1/reports/basic", {"campaign_id": "not-a-uuid"})
    assert (response.status_code, list(response.json()["error"]["details"])) == (400, ["campaign_id"])


def test_an_unknown_query_parameter_is_a_400(api, known):
    response = api.get("/api/v1/reports/basic", {"campaign_id": str(known.campaign.pk), "campaing": "x"})
    assert response.status_code == 400


def test_another_workspaces_campaign_is_a_404(other_api, known):
    response = other_api.get("/api/v1/reports/basic", {"campaign_id": str(known.campaign.pk)})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "RESOURCE_NOT_FOUND")


def test_a_run_of_another_campaign_is_a_404(api, workspace, known):
    other = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace)
    response = api.get("/api/v1/reports/link", {"campaign_id": str(known.campaign.pk), "run_id": str(other.pk)})
    assert response.status_code == 404


def test_without_a_key_is_a_401(anon, known):
    assert anon.get("/api/v1/reports/basic", {"campaign_id": str(known.campaign.pk)}).status_code == 401


def test_link_lists_urls_most_clicked_first(api, known):
    response = api.get("/api/v1/reports/link", {"campaign_id": str(known.campaign.pk)})
    assert response.json()["links"][0] == {"url": URL1, "clicks": 3, "unique_clicks": 2}


def test_open_time_in_a_zone(api, known):
    response = api.get(
        "/api/v1/reports/open-time", {"campaign_id": str(known.campaign.pk), "timezone": "America/New_York"}
    )
    body = response.json()
    assert (response.status_code, body["timezone"], body["by_hour"][9], body["by_hour"][1]) == (
        200,
        "America/New_York",
        2,
        2,
    )
    assert len(body["by_day_hour"]) == 7 and all(len(row) == 24 for row in body["by_day_hour"])


def test_open_time_in_an_unknown_zone_is_a_400_naming_it(api, known):
    response = api.get("/api/v1/reports/open-time", {"campaign_id": str(known.campaign.pk), "timezone": "Mars/Olympus"})
    assert (response.status_code, list(response.json()["error"]["details"])) == (400, ["timezone"])


def test_label_sums_its_campaigns(api, workspace, known):
    label = LabelFactory(workspace=workspace)
    known.campaign.labels.add(label)
    response = api.get("/api/v1/reports/label", {"label": str(label.pk)})
    assert (response.status_code, response.json()["campaigns"], response.json()["sent"]) == (200, 1, 5)


def test_label_may_be_named(api, workspace, known):
    known.campaign.labels.add(LabelFactory(workspace=workspace, name="customers"))
    response = api.get("/api/v1/reports/label", {"label": "customers"})
    assert (response.status_code, response.json()["campaigns"]) == (200, 1)


def test_another_workspaces_label_is_a_404(other_api, workspace, known):
    label = LabelFactory(workspace=workspace)
    assert other_api.get("/api/v1/reports/label", {"label": str(label.pk)}).status_code == 404


def test_category_sums_its_campaigns(api, known):
    known.campaign.category = "news"
    known.campaign.save()
    response = api.get("/api/v1/reports/category", {"category": "news"})
    assert (response.status_code, response.json()["campaigns"], response.json()["unique_clicks"]) == (200, 1, 3)


def test_a_category_of_no_campaign_has_zero_figures(api):
    response = api.get("/api/v1/reports/category", {"category": "none"})
    assert (response.status_code, response.json()["campaigns"], response.json()["open_rate"]) == (200, 0, 0.0)
