"""One email normalisation (audience.models.normalize_email, decision 003): contacts and suppressions are
stored alike whether the API, the admin or a service wrote them, and the list filters look them up alike."""

import pytest

from audience.models import Contact, Suppression
from audience.services import contact_create, suppression_create

pytestmark = pytest.mark.django_db

TYPED = "  Ana@Example.ORG "


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def _take(model):
    row = model.objects.get()
    row.delete()
    return row.email


def test_a_contact_email_is_stored_alike_by_api_admin_and_service(api, admin_client, workspace):
    assert api.post("/api/v1/contacts", {"email": TYPED}, format="json").status_code == 201
    via_api = _take(Contact)
    response = admin_client.post(
        "/admin/audience/contact/add/",
        {"workspace": str(workspace.pk), "email": TYPED, "status": "subscribed", "attributes": "{}"},
    )
    assert response.status_code == 302
    via_admin = _take(Contact)
    via_service = contact_create(workspace=workspace, email=TYPED).email
    assert [via_api, via_admin, via_service] == ["ana@example.org"] * 3


def test_a_suppressed_email_is_stored_alike_by_api_admin_and_service(api, admin_client, workspace):
    assert api.post("/api/v1/suppressions", {"email": TYPED}, format="json").status_code == 201
    via_api = _take(Suppression)
    response = admin_client.post(
        "/admin/audience/suppression/add/", {"workspace": str(workspace.pk), "email": TYPED, "reason": "manual"}
    )
    assert response.status_code == 302
    via_admin = _take(Suppression)
    via_service = suppression_create(workspace=workspace, email=TYPED).email
    assert [via_api, via_admin, via_service] == ["ana@example.org"] * 3


def test_the_email_filters_normalise_the_query_alike(api, workspace):
    contact_create(workspace=workspace, email="ana@example.org")
    suppression_create(workspace=workspace, email="ana@example.org")
    contacts = api.get("/api/v1/contacts", {"email": TYPED}).json()["results"]
    suppressions = api.get("/api/v1/suppressions", {"email": TYPED}).json()["results"]
    assert [row["email"] for row in contacts + suppressions] == ["ana@example.org"] * 2
