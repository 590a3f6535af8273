import pytest

from campaigns.models import Template
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_template_is_created_in_the_admin(admin_client, workspace):
    response = admin_client.post(
        "/admin/campaigns/template/add/",
        {"workspace": str(workspace.pk), "name": "Welcome", "subject": "Hi {{ first_name }}", "html": "<p>Hi</p>",
         "text": ""},
    )
    assert response.status_code == 302
    assert Template.objects.get(workspace=workspace).name == "Welcome"


def test_syntax_error_is_a_form_error_on_the_field(admin_client, workspace):
    response = admin_client.post(
        "/admin/campaigns/template/add/",
        {"workspace": str(workspace.pk), "name": "Broken", "subject": "", "html": "{% for %}", "text": ""},
    )
    assert response.status_code == 200
    assert "line 1" in response.context["adminform"].form.errors["html"][0]
    assert not Template.objects.exists()


def test_renaming_to_a_taken_name_is_a_form_error(admin_client, workspace):
    TemplateFactory(workspace=workspace, name="Taken")
    template = TemplateFactory(workspace=workspace, name="Mine")
    response = admin_client.post(
        f"/admin/campaigns/template/{template.pk}/change/",
        {"name": "Taken", "subject": template.subject, "html": template.html, "text": template.text},
    )
    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    template.refresh_from_db()
    assert template.name == "Mine"
