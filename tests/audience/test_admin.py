import io

import pytest

from audience.admin import ContactAdminForm, SegmentAdminForm
from audience.services import contact_import_create
from common.validators import SINGLE_LINE_MESSAGE
from tests.factories import ContactFactory, LabelFactory, SegmentFactory, SuppressionFactory

ROW_TEXT = {
    "contact": "c@{}.org",
    "label": "label {}",
    "segment": "segment {}",
    "suppression": "s@{}.org",
    "contactimport": "import-{}.csv",
}


@pytest.mark.parametrize("model", ROW_TEXT)
def test_changelist_shows_every_workspace(admin_client, workspace, other_workspace, model):
    for ws in (workspace, other_workspace):
        ContactFactory(workspace=ws, email=f"c@{ws.pk}.org")
        LabelFactory(workspace=ws, name=f"label {ws.pk}")
        SegmentFactory(workspace=ws, name=f"segment {ws.pk}")
        SuppressionFactory(workspace=ws, email=f"s@{ws.pk}.org")
        contact_import_create(workspace=ws, filename=f"import-{ws.pk}.csv", fileobj=io.BytesIO(b"email\n"))
    response = admin_client.get(f"/admin/audience/{model}/?q=")
    assert response.status_code == 200
    content = response.content.decode()
    assert all(ROW_TEXT[model].format(ws.pk) in content for ws in (workspace, other_workspace))


def test_contact_change_page_renders(admin_client, workspace):
    contact = ContactFactory(workspace=workspace, labels=[LabelFactory(workspace=workspace)])
    assert admin_client.get(f"/admin/audience/contact/{contact.pk}/change/").status_code == 200


def test_contact_imports_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get("/admin/audience/contactimport/add/").status_code == 403


def test_contact_form_refuses_a_label_of_another_workspace(workspace, other_workspace):
    foreign = LabelFactory(workspace=other_workspace)
    form = ContactAdminForm(
        data={
            "workspace": workspace.pk,
            "email": "A@x.org",
            "status": "subscribed",
            "attributes": "{}",
            "labels": [foreign.pk],
        }
    )
    assert not form.is_valid()
    assert "labels" in form.errors


def test_contact_form_lowercases_email_and_rejects_non_object_attributes(workspace):
    form = ContactAdminForm(
        data={"workspace": workspace.pk, "email": "A@X.org", "status": "subscribed", "attributes": "[1]"}
    )
    assert not form.is_valid()
    assert form.cleaned_data["email"] == "a@x.org"
    assert "attributes" in form.errors


def test_segment_form_refuses_bad_rules(workspace):
    form = SegmentAdminForm(data={"workspace": workspace.pk, "name": "s", "rules": '{"all": [{"op": "eq"}]}'})
    assert not form.is_valid()
    assert "rules.all[0]" in str(form.errors["rules"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "Eve\r\nX-Injected: yes"),
        ("last_name", "Doe\nBcc: victim@example.org"),
        ("email", '"eve\x0bx"@example.org'),
    ],
)
def test_contact_form_refuses_a_header_field_that_is_not_one_line(workspace, field, value):
    data = {"workspace": workspace.pk, "email": "eve@example.org", "status": "subscribed", "attributes": "{}"}
    form = ContactAdminForm(data={**data, field: value})
    assert not form.is_valid()
    assert form.errors[field] == [SINGLE_LINE_MESSAGE]


def test_contact_change_page_shows_the_engagement_profile(admin_client, workspace):
    from delivery.services import engagement_import

    contact = ContactFactory(workspace=workspace)
    rows = [{"email": contact.email, "type": "opened", "occurred_at": "2026-06-02T09:30:00Z"}]  # a Tuesday
    engagement_import(workspace_id=workspace.id, rows=rows)

    content = admin_client.get(f"/admin/audience/contact/{contact.pk}/change/").content.decode()

    assert "1 opens, 0 clicks, 0 machine opens" in content and "Best hours (UTC): Tue 09:00." in content
    assert content.count("background:rgba(32,96,160,1.00)") == 1
