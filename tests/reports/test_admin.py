"""The admin report page of a campaign and the rates in the campaign list."""

import pytest

from tests.factories import CampaignFactory, CampaignRunFactory, DeliveryFactory
from tests.reports.conftest import URL1

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_the_report_page_shows_figures_links_and_the_chart(admin_client, known):
    response = admin_client.get(f"/admin/campaigns/campaign/{known.campaign.pk}/report/?timezone=America/New_York")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-figure="open_rate"><div class="value">80%' in html
    assert 'data-figure="machine_opens"><div class="value">2<' in html
    assert f"<td>{URL1}</td><td>3</td><td>2</td>" in html
    assert html.count('class="bar"') == 24
    assert 'data-hour="9" data-opens="2"' in html and 'data-hour="1" data-opens="2"' in html


def test_the_report_page_has_no_external_script_or_style(admin_client, known):
    html = admin_client.get(f"/admin/campaigns/campaign/{known.campaign.pk}/report/").content.decode()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://cdn" not in html


def test_an_unknown_zone_on_the_report_page_falls_back_to_utc(admin_client, known):
    response = admin_client.get(f"/admin/campaigns/campaign/{known.campaign.pk}/report/?timezone=Nowhere/City")
    assert response.status_code == 200 and "Opens by hour (UTC)" in response.content.decode()


def test_the_report_page_shows_progress_while_sending(admin_client, workspace):
    run = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace, total=2, sent=1)
    DeliveryFactory(run=run, status="sent")
    response = admin_client.get(f"/admin/campaigns/campaign/{run.campaign_id}/report/")
    assert "1/2 sent" in response.content.decode()


def test_the_report_page_of_a_missing_campaign_redirects(admin_client):
    response = admin_client.get("/admin/campaigns/campaign/8d8ac610-566d-4ef0-9c22-186b0f3fdd3c/report/")
    assert response.status_code == 302


def test_the_campaign_page_links_to_its_report(admin_client, known):
    html = admin_client.get(f"/admin/campaigns/campaign/{known.campaign.pk}/change/").content.decode()
    assert f'href="/admin/campaigns/campaign/{known.campaign.pk}/report/" data-action="report"' in html


def test_the_campaign_list_shows_open_and_click_rates(admin_client, known):
    CampaignFactory(workspace=known.campaign.workspace, name="never sent")
    html = admin_client.get("/admin/campaigns/campaign/").content.decode()
    assert '<td class="field-open_rate">80.0%</td>' in html
    assert '<td class="field-click_rate">60.0%</td>' in html
    assert '<td class="field-open_rate">-</td>' in html
