import pytest

from campaigns.models import Template
from tests.factories import TemplateFactory

URL = "/api/v1/templates"

pytestmark = pytest.mark.django_db

VALID = {"name": "Welcome", "subject": "Hi {{ first_name }}", "html": "<p>Hi {{ first_name }}</p>", "text": "Hi"}


def test_create_returns_the_template(api):
    response = api.post(URL, VALID, format="json")
    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in VALID} == VALID
    assert Template.objects.get(pk=body["id"]).workspace == api.workspace


def test_syntax_error_is_400_naming_the_field_and_line(api):
    response = api.post(URL, {**VALID, "html": "<p>\nHi\n{{ first_name }</p>"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == ["html"]
    assert error["details"]["html"][0].startswith("Template syntax error on line 3:")
    assert not Template.objects.exists()


def test_unknown_filter_is_400(api):
    response = api.post(URL, {**VALID, "subject": "{{ first_name|shout }}"}, format="json")
    assert response.status_code == 400
    assert "No filter named 'shout'" in response.json()["error"]["details"]["subject"][0]


def test_template_reaching_for_python_internals_is_400(api):
    response = api.post(URL, {**VALID, "text": "Hi\n{{ ''.__class__.__mro__ }}"}, format="json")
    assert response.status_code == 400
    message = response.json()["error"]["details"]["text"][0]
    assert message.startswith("Template error on line 2:")
    assert "private attribute" in message


def test_multiline_subject_is_400(api):
    response = api.post(URL, {**VALID, "subject": "Hi\r\nBcc: everyone@example.com"}, format="json")
    assert response.status_code == 400
    assert "subject" in response.json()["error"]["details"]


def test_template_without_html_or_text_is_400(api):
    response = api.post(URL, {"name": "Empty", "subject": "Hi"}, format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["error"]["details"]


def test_nul_character_is_400(api):
    response = api.post(URL, {**VALID, "html": "a\x00b"}, format="json")
    assert response.status_code == 400
    assert "html" in response.json()["error"]["details"]


def test_duplicate_name_in_the_workspace_is_400(api, workspace):
    TemplateFactory(workspace=workspace, name="Welcome")
    response = api.post(URL, VALID, format="json")
    assert response.status_code == 400
    assert "already exists" in response.json()["error"]["details"]["name"][0]


def test_same_name_in_another_workspace_is_allowed(api, other_workspace):
    TemplateFactory(workspace=other_workspace, name="Welcome")
    assert api.post(URL, VALID, format="json").status_code == 201


def test_patch_changes_only_the_given_field(api, workspace):
    template = TemplateFactory(workspace=workspace, text="Old text")
    response = api.patch(f"{URL}/{template.id}", {"subject": "New {{ last_name }}"}, format="json")
    assert response.status_code == 200
    template.refresh_from_db()
    assert template.subject == "New {{ last_name }}"
    assert template.text == "Old text"


def test_patch_with_a_syntax_error_keeps_the_stored_template(api, workspace):
    template = TemplateFactory(workspace=workspace, html="<p>ok</p>")
    response = api.patch(f"{URL}/{template.id}", {"html": "{{ broken"}, format="json")
    assert response.status_code == 400
    assert "line 1" in response.json()["error"]["details"]["html"][0]
    template.refresh_from_db()
    assert template.html == "<p>ok</p>"


def test_patch_to_a_name_already_taken_is_400(api, workspace):
    TemplateFactory(workspace=workspace, name="Taken")
    template = TemplateFactory(workspace=workspace, name="Mine")
    response = api.patch(f"{URL}/{template.id}", {"name": "Taken"}, format="json")
    assert response.status_code == 400
    template.refresh_from_db()
    assert template.name == "Mine"


def test_list_shows_only_the_workspace_templates(api, workspace, other_workspace):
    mine = TemplateFactory(workspace=workspace)
    TemplateFactory(workspace=other_workspace)
    body = api.get(URL).json()
    assert [item["id"] for item in body["results"]] == [str(mine.id)]


def test_another_workspace_template_is_404(api, other_workspace):
    template = TemplateFactory(workspace=other_workspace)
    assert api.get(f"{URL}/{template.id}").status_code == 404
    assert api.patch(f"{URL}/{template.id}", {"name": "Stolen"}, format="json").status_code == 404
    assert api.delete(f"{URL}/{template.id}").status_code == 404
    template.refresh_from_db()
    assert template.name != "Stolen"


def test_delete_removes_the_template(api, workspace):
    template = TemplateFactory(workspace=workspace)
    assert api.delete(f"{URL}/{template.id}").status_code == 204
    assert not Template.objects.filter(pk=template.pk).exists()


def test_non_uuid_id_is_404(api):
    response = api.get(f"{URL}/not-a-uuid")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
