"""accounts.api: the workspace-scoped base classes, for the requests DRF runs through them on its own (OPTIONS)."""

import uuid

import pytest

from tests.factories import ContactFactory, LabelFactory, SegmentFactory, SuppressionFactory, TemplateFactory

RESOURCES = {
    "contacts": ContactFactory,
    "labels": LabelFactory,
    "segments": SegmentFactory,
    "suppressions": SuppressionFactory,
    "templates": TemplateFactory,
}


@pytest.mark.parametrize("resource", RESOURCES)
def test_options_on_an_object_describes_its_update(api, workspace, resource):
    obj = RESOURCES[resource](workspace=workspace)
    response = api.options(f"/api/v1/{resource}/{obj.pk}")
    assert response.status_code == 200, response.content[:300]
    assert "PUT" in response.json()["actions"]


@pytest.mark.parametrize("resource", RESOURCES)
def test_options_on_another_workspaces_object_answers_as_for_a_missing_one(api, other_workspace, resource):
    foreign = RESOURCES[resource](workspace=other_workspace)
    response = api.options(f"/api/v1/{resource}/{foreign.pk}")
    missing = api.options(f"/api/v1/{resource}/{uuid.uuid4()}")
    assert response.status_code == missing.status_code == 200
    assert response.json() == missing.json()
    assert "actions" not in response.json()
