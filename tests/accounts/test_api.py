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


@pytest.mark.parametrize(
    "path",
    ["contacts/not-a-uuid", "campaigns/null,null", "campaigns/12345/send", "contacts/imports/x", "sending-domains/0"],
)
def test_a_malformed_id_is_404_like_any_id_that_names_nothing(api, path):
    for method in ("get", "post", "delete"):
        response = getattr(api, method)(f"/api/v1/{path}")
        assert response.status_code == 404, (method, path, response.content[:200])
        assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_an_id_without_dashes_still_names_the_object(api, workspace):
    label = LabelFactory(workspace=workspace)
    response = api.get(f"/api/v1/labels/{label.pk.hex}")
    assert response.status_code == 200
    assert response.json()["id"] == str(label.pk)
