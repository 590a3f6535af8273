"""The CSV export: asynchronous on `default`, only its workspace's key downloads it, formula cells
neutralised, the same figures as `basic`, and expiry."""

import csv
import io
from datetime import timedelta

import pytest
import time_machine
from django.core.files.storage import default_storage
from django.utils import timezone

from reports.models import ReportExport
from reports.services import csv_safe, report_export_build, report_exports_expire
from tests.factories import DeliveryFactory
from tests.queues import purge, queued, run_queued

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_default_queue():
    purge("default")
    yield
    purge("default")


def _export(api, campaign) -> dict:
    response = api.post("/api/v1/reports/export", {"campaign_id": str(campaign.pk)}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def _download(api, export_id) -> list[dict]:
    response = api.get(f"/api/v1/reports/export/{export_id}/download")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_starting_an_export_answers_202_pending_and_enqueues_it_on_default(
    api, known, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        body = _export(api, known.campaign)
    assert (body["status"], body["download_url"]) == ("pending", None)
    assert [(t.name, t.args) for t in queued("default")] == [("reports.tasks.build_export", [body["id"]])]


def test_a_built_export_is_done_with_a_download_url(api, known, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = _export(api, known.campaign)
    run_queued("default")
    detail = api.get(f"/api/v1/reports/export/{body['id']}").json()
    assert (detail["status"], detail["rows"]) == ("done", 6)
    assert detail["download_url"].endswith(f"/api/v1/reports/export/{body['id']}/download")


def test_the_csv_parses_back_to_the_figures_of_basic(api, known, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = _export(api, known.campaign)
    run_queued("default")
    rows = _download(api, body["id"])
    basic = api.get("/api/v1/reports/basic", {"campaign_id": str(known.campaign.pk)}).json()
    from_csv = {
        "sent": sum(row["status"] == "sent" for row in rows),
        "bounced": sum(row["status"] == "bounced" for row in rows),
        "opens": sum(int(row["opens"]) for row in rows),
        "clicks": sum(int(row["clicks"]) for row in rows),
        "unique_opens": sum(bool(row["first_open_at"]) for row in rows),
        "unique_clicks": sum(bool(row["first_click_at"]) for row in rows),
    }
    assert from_csv == {key: basic[key] for key in from_csv}
    bounced = next(row for row in rows if row["status"] == "bounced")
    assert bounced["bounce_reason"] == "550 5.1.1 no such user"
    first = next(row for row in rows if row["email"] == "a@example.org")
    assert (first["first_open_at"], first["first_click_at"]) == ("2026-10-31T13:10:00Z", "2026-10-31T13:11:00Z")


def test_cells_a_spreadsheet_would_run_as_formulas_get_an_apostrophe(api, workspace, known):
    DeliveryFactory(run=known.run, contact__email="=1+1@example.org", status="bounced", error="@SUM(A1:A9)")
    export = ReportExport.objects.create(workspace=workspace, campaign_id=known.campaign.pk, expires_at=timezone.now())
    report_export_build(export_id=export.pk)
    row = next(row for row in _download(api, export.pk) if "1+1" in row["email"])
    assert (row["email"], row["bounce_reason"]) == ("'=1+1@example.org", "'@SUM(A1:A9)")


@pytest.mark.parametrize("cell", ["=A1", "+1", "-1", "@x", "\tx", "\rx"])
def test_csv_safe_neutralises_each_formula_start(cell):
    assert csv_safe(cell) == "'" + cell


def test_csv_safe_leaves_ordinary_cells_alone():
    assert csv_safe("ann@example.org") == "ann@example.org"


def test_another_workspaces_key_cannot_see_or_download_an_export(api, other_api, known):
    body = _export(api, known.campaign)
    report_export_build(export_id=body["id"])
    assert other_api.get(f"/api/v1/reports/export/{body['id']}").status_code == 404
    assert other_api.get(f"/api/v1/reports/export/{body['id']}/download").status_code == 404


def test_downloading_needs_a_key(anon, api, known):
    body = _export(api, known.campaign)
    report_export_build(export_id=body["id"])
    assert anon.get(f"/api/v1/reports/export/{body['id']}/download").status_code == 401


def test_an_export_not_built_yet_has_nothing_to_download(api, known):
    body = _export(api, known.campaign)
    assert api.get(f"/api/v1/reports/export/{body['id']}/download").status_code == 404


def test_an_export_of_another_workspaces_campaign_is_a_404(other_api, known):
    response = other_api.post("/api/v1/reports/export", {"campaign_id": str(known.campaign.pk)}, format="json")
    assert (response.status_code, ReportExport.objects.count()) == (404, 0)


def test_an_export_body_with_an_unknown_field_is_a_400(api, known):
    response = api.post("/api/v1/reports/export", {"campaign_id": str(known.campaign.pk), "x": 1}, format="json")
    assert (response.status_code, ReportExport.objects.count()) == (400, 0)


def test_building_twice_builds_once(api, known):
    body = _export(api, known.campaign)
    assert report_export_build(export_id=body["id"]) is True
    assert report_export_build(export_id=body["id"]) is False


def test_expired_exports_and_their_files_are_deleted(api, known, settings):
    body = _export(api, known.campaign)
    report_export_build(export_id=body["id"])
    name = ReportExport.objects.get(pk=body["id"]).file
    with time_machine.travel(timezone.now() + timedelta(hours=settings.REPORTS_EXPORT_TTL_HOURS, minutes=1)):
        assert report_exports_expire() == 1
    assert not default_storage.exists(name)
    assert api.get(f"/api/v1/reports/export/{body['id']}").status_code == 404


def test_an_export_within_its_lifetime_is_kept(api, known):
    body = _export(api, known.campaign)
    report_export_build(export_id=body["id"])
    assert report_exports_expire() == 0
    assert api.get(f"/api/v1/reports/export/{body['id']}").status_code == 200
