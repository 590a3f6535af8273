import uuid

import pytest

from audience.models import Contact, Label, Segment, Suppression
from tests.factories import ContactFactory, LabelFactory, SegmentFactory, SuppressionFactory


def _error(response, status: int, code: str = "VALIDATION_ERROR") -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    return body["error"]["details"]


# --- contacts -------------------------------------------------------------------------------------------


def test_create_contact_normalises_email_and_links_labels(api, workspace):
    label = LabelFactory(workspace=workspace)
    response = api.post(
        "/api/v1/contacts",
        {
            "email": "  Ana@Example.ORG ",
            "first_name": "Ana",
            "timezone": "Asia/Jakarta",
            "attributes": {"plan": "pro"},
            "labels": [str(label.id)],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "ana@example.org"
    assert body["labels"] == [str(label.id)]
    assert body["status"] == "subscribed"
    assert body["attributes"] == {"plan": "pro"}
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert Contact.objects.get(pk=body["id"]).workspace == workspace


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@x.org", "timezone": "Mars/Olympus"}, "timezone"),
        ({"email": "a@x.org", "attributes": ["a"]}, "attributes"),
        ({"email": "a@x.org", "attributes": "plan=pro"}, "attributes"),
        ({"email": "a@x.org", "attributes": {"k": "a\x00b"}}, "attributes"),
        ({"email": "a@x.org", "attributes": {f"k{i}": i for i in range(101)}}, "attributes"),
        ({"email": "a@x.org", "first_name": "A\x00"}, "first_name"),
        ({"email": "a@x.org", "status": "deleted"}, "status"),
        ({"email": "a@x.org", "labels": ["nope"]}, "labels"),
        ({"email": "a@x.org", "nickname": "A"}, "nickname"),
        ({"email": "a@x.org", "id": str(uuid.uuid4())}, "id"),
        ({"first_name": "A"}, "email"),
    ],
)
def test_create_contact_rejects_bad_field(api, payload, field):
    details = _error(api.post("/api/v1/contacts", payload, format="json"), 400)
    assert field in details
    assert not Contact.objects.exists()


def test_create_contact_with_duplicate_email_names_email(api, workspace):
    ContactFactory(workspace=workspace, email="ana@x.org")
    details = _error(api.post("/api/v1/contacts", {"email": "ANA@x.org"}, format="json"), 400)
    assert "email" in details


def test_same_email_may_exist_in_two_workspaces(api, other_workspace):
    ContactFactory(workspace=other_workspace, email="ana@x.org")
    assert api.post("/api/v1/contacts", {"email": "ana@x.org"}, format="json").status_code == 201


def test_create_contact_with_label_of_another_workspace_is_rejected_and_not_linked(api, other_workspace):
    foreign = LabelFactory(workspace=other_workspace)
    details = _error(
        api.post("/api/v1/contacts", {"email": "a@x.org", "labels": [str(foreign.id)]}, format="json"), 400
    )
    assert "labels" in details
    assert not foreign.contacts.exists()


def test_patch_contact_changes_only_given_fields(api, workspace):
    contact = ContactFactory(
        workspace=workspace, email="a@x.org", first_name="Ana", attributes={"plan": "pro"}
    )
    response = api.patch(f"/api/v1/contacts/{contact.id}", {"status": "unsubscribed"}, format="json")
    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert (contact.status, contact.first_name, contact.attributes) == (
        "unsubscribed",
        "Ana",
        {"plan": "pro"},
    )


def test_patch_contact_replaces_labels(api, workspace):
    old, new = LabelFactory(workspace=workspace), LabelFactory(workspace=workspace)
    contact = ContactFactory(workspace=workspace, labels=[old])
    response = api.patch(f"/api/v1/contacts/{contact.id}", {"labels": [str(new.id)]}, format="json")
    assert response.json()["labels"] == [str(new.id)]


def test_patch_contact_to_an_existing_email_is_400(api, workspace):
    ContactFactory(workspace=workspace, email="taken@x.org")
    contact = ContactFactory(workspace=workspace, email="a@x.org")
    details = _error(
        api.patch(f"/api/v1/contacts/{contact.id}", {"email": "Taken@x.org"}, format="json"), 400
    )
    assert "email" in details
    contact.refresh_from_db()
    assert contact.email == "a@x.org"


def test_patch_contact_with_label_of_another_workspace_keeps_its_labels(api, workspace, other_workspace):
    mine = LabelFactory(workspace=workspace)
    contact = ContactFactory(workspace=workspace, labels=[mine])
    foreign = LabelFactory(workspace=other_workspace)
    response = api.patch(f"/api/v1/contacts/{contact.id}", {"labels": [str(foreign.id)]}, format="json")
    assert "labels" in _error(response, 400)
    assert list(contact.labels.all()) == [mine]


def test_put_contact_replaces_it(api, workspace):
    contact = ContactFactory(workspace=workspace, email="a@x.org")
    response = api.put(
        f"/api/v1/contacts/{contact.id}",
        {"email": "b@x.org", "first_name": "Bea", "timezone": ""},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "b@x.org"


def test_delete_contact(api, workspace):
    contact = ContactFactory(workspace=workspace)
    assert api.delete(f"/api/v1/contacts/{contact.id}").status_code == 204
    assert not Contact.objects.filter(pk=contact.pk).exists()


def test_list_contacts_filters(api, workspace):
    label = LabelFactory(workspace=workspace)
    ContactFactory(workspace=workspace, email="ana@x.org", first_name="Ana", labels=[label])
    ContactFactory(workspace=workspace, email="bo@x.org", first_name="Bo", status=Contact.Status.BOUNCED)

    def emails(query):
        response = api.get(f"/api/v1/contacts?{query}")
        assert response.status_code == 200, response.content
        return [row["email"] for row in response.json()["results"]]

    assert emails("") == ["ana@x.org", "bo@x.org"]
    assert emails("status=bounced") == ["bo@x.org"]
    assert emails(f"label={label.id}") == ["ana@x.org"]
    assert emails("email=ANA@x.org") == ["ana@x.org"]
    assert emails("search=bo") == ["bo@x.org"]


@pytest.mark.parametrize("query", ["status=gone", "label=not-a-uuid", "search=a%00b"])
def test_list_contacts_with_bad_filter_is_400(api, query):
    _error(api.get(f"/api/v1/contacts?{query}"), 400)


def test_contact_list_is_paginated(api, workspace):
    for _ in range(3):
        ContactFactory(workspace=workspace)
    body = api.get("/api/v1/contacts?page_size=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


# --- labels ---------------------------------------------------------------------------------------------


def test_create_label_and_count_contacts(api, workspace):
    response = api.post("/api/v1/labels", {"name": "news"}, format="json")
    assert response.status_code == 201, response.content
    label = Label.objects.get(pk=response.json()["id"])
    ContactFactory(workspace=workspace, labels=[label])
    assert api.get(f"/api/v1/labels/{label.id}").json()["contact_count"] == 1
    assert api.get("/api/v1/labels").json()["results"][0]["contact_count"] == 1


def test_duplicate_label_name_is_400(api, workspace):
    LabelFactory(workspace=workspace, name="news")
    assert "name" in _error(api.post("/api/v1/labels", {"name": "news"}, format="json"), 400)


@pytest.mark.parametrize(
    "payload", [{}, {"name": ""}, {"name": "x" * 101}, {"name": "a\x00"}, {"name": "a", "x": 1}]
)
def test_create_label_rejects_bad_input(api, payload):
    _error(api.post("/api/v1/labels", payload, format="json"), 400)


def test_rename_label_to_existing_name_is_400(api, workspace):
    LabelFactory(workspace=workspace, name="news")
    label = LabelFactory(workspace=workspace, name="vip")
    assert "name" in _error(api.patch(f"/api/v1/labels/{label.id}", {"name": "news"}, format="json"), 400)


def test_delete_label_keeps_its_contacts(api, workspace):
    label = LabelFactory(workspace=workspace)
    contact = ContactFactory(workspace=workspace, labels=[label])
    assert api.delete(f"/api/v1/labels/{label.id}").status_code == 204
    assert Contact.objects.filter(pk=contact.pk).exists()


# --- segments -------------------------------------------------------------------------------------------


def test_create_segment_and_list_its_contacts(api, workspace):
    ContactFactory(workspace=workspace, email="id@x.org", attributes={"country": "ID"})
    ContactFactory(workspace=workspace, email="fr@x.org", attributes={"country": "FR"})
    rules = {"all": [{"attribute": "country", "op": "eq", "value": "ID"}]}
    response = api.post("/api/v1/segments", {"name": "Indonesia", "rules": rules}, format="json")
    assert response.status_code == 201, response.content
    segment_id = response.json()["id"]
    assert response.json()["rules"] == rules
    contacts = api.get(f"/api/v1/segments/{segment_id}/contacts").json()
    assert [row["email"] for row in contacts["results"]] == ["id@x.org"]
    assert api.get(f"/api/v1/segments/{segment_id}/count").json() == {"count": 1}


def test_segment_with_bad_rule_names_the_path(api):
    rules = {"all": [{"attribute": "country", "op": "like", "value": "ID"}]}
    details = _error(api.post("/api/v1/segments", {"name": "s", "rules": rules}, format="json"), 400)
    assert "rules.all[0].op" in details


def test_segment_with_label_of_another_workspace_is_400(api, other_workspace):
    foreign = LabelFactory(workspace=other_workspace)
    rules = {"any": [{"label": str(foreign.id), "op": "has"}]}
    details = _error(api.post("/api/v1/segments", {"name": "s", "rules": rules}, format="json"), 400)
    assert "rules.any[0].label" in details


def test_segment_with_label_of_the_workspace_is_accepted(api, workspace):
    label = LabelFactory(workspace=workspace)
    rules = {"any": [{"label": str(label.id), "op": "has"}]}
    assert api.post("/api/v1/segments", {"name": "s", "rules": rules}, format="json").status_code == 201


def test_duplicate_segment_name_is_400(api, workspace):
    SegmentFactory(workspace=workspace, name="s")
    rules = {"all": [{"attribute": "a", "op": "exists"}]}
    assert "name" in _error(api.post("/api/v1/segments", {"name": "s", "rules": rules}, format="json"), 400)


def test_patch_segment_with_bad_rules_keeps_the_stored_ones(api, workspace):
    segment = SegmentFactory(workspace=workspace)
    before = segment.rules
    _error(api.patch(f"/api/v1/segments/{segment.id}", {"rules": {"all": []}}, format="json"), 400)
    segment.refresh_from_db()
    assert segment.rules == before


def test_delete_segment(api, workspace):
    segment = SegmentFactory(workspace=workspace)
    assert api.delete(f"/api/v1/segments/{segment.id}").status_code == 204
    assert not Segment.objects.filter(pk=segment.pk).exists()


# --- suppressions ---------------------------------------------------------------------------------------


def test_create_suppression(api, workspace):
    response = api.post("/api/v1/suppressions", {"email": "Bad@X.org", "reason": "bounced"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["email"] == "bad@x.org"
    assert Suppression.objects.get(workspace=workspace).reason == "bounced"


def test_suppressing_an_address_twice_is_400(api, workspace):
    SuppressionFactory(workspace=workspace, email="bad@x.org")
    assert "email" in _error(api.post("/api/v1/suppressions", {"email": "BAD@x.org"}, format="json"), 400)


@pytest.mark.parametrize(
    ("payload", "field"), [({"email": "nope"}, "email"), ({"email": "a@x.org", "reason": "x"}, "reason")]
)
def test_create_suppression_rejects_bad_field(api, payload, field):
    assert field in _error(api.post("/api/v1/suppressions", payload, format="json"), 400)


def test_patch_and_delete_suppression(api, workspace):
    suppression = SuppressionFactory(workspace=workspace)
    response = api.patch(f"/api/v1/suppressions/{suppression.id}", {"reason": "complained"}, format="json")
    assert response.json()["reason"] == "complained"
    assert api.delete(f"/api/v1/suppressions/{suppression.id}").status_code == 204


def test_list_suppressions_filters_by_email(api, workspace):
    SuppressionFactory(workspace=workspace, email="a@x.org")
    SuppressionFactory(workspace=workspace, email="b@x.org")
    assert [r["email"] for r in api.get("/api/v1/suppressions?email=A@x.org").json()["results"]] == [
        "a@x.org"
    ]


# --- isolation and authentication -----------------------------------------------------------------------

RESOURCES = {
    "contacts": (ContactFactory, {"first_name": "X"}),
    "labels": (LabelFactory, {"name": "renamed"}),
    "segments": (SegmentFactory, {"name": "renamed"}),
    "suppressions": (SuppressionFactory, {"reason": "bounced"}),
}


@pytest.mark.parametrize("resource", RESOURCES)
def test_another_workspaces_object_is_404_and_unchanged(api, other_workspace, resource):
    factory, patch = RESOURCES[resource]
    theirs = factory(workspace=other_workspace)
    url = f"/api/v1/{resource}/{theirs.id}"
    _error(api.get(url), 404, "RESOURCE_NOT_FOUND")
    _error(api.patch(url, patch, format="json"), 404, "RESOURCE_NOT_FOUND")
    _error(api.put(url, patch, format="json"), 404, "RESOURCE_NOT_FOUND")
    _error(api.delete(url), 404, "RESOURCE_NOT_FOUND")
    assert type(theirs).objects.filter(pk=theirs.pk).exists()
    assert api.get(f"/api/v1/{resource}").json()["results"] == []


@pytest.mark.parametrize("action", ["contacts", "count"])
def test_another_workspaces_segment_actions_are_404(api, other_workspace, action):
    segment = SegmentFactory(workspace=other_workspace)
    _error(api.get(f"/api/v1/segments/{segment.id}/{action}"), 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize("resource", RESOURCES)
def test_unknown_id_is_404(api, resource):
    _error(api.get(f"/api/v1/{resource}/{uuid.uuid4()}"), 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/contacts"),
        ("post", "/api/v1/contacts"),
        ("get", f"/api/v1/contacts/{uuid.uuid4()}"),
        ("get", "/api/v1/labels"),
        ("post", "/api/v1/labels"),
        ("get", "/api/v1/segments"),
        ("get", f"/api/v1/segments/{uuid.uuid4()}/contacts"),
        ("get", "/api/v1/suppressions"),
        ("post", "/api/v1/contacts/import"),
        ("get", f"/api/v1/contacts/imports/{uuid.uuid4()}"),
    ],
)
def test_unauthenticated_is_401(anon, method, path):
    _error(getattr(anon, method)(path), 401, "UNAUTHENTICATED")


def test_malformed_json_body_is_400(api):
    response = api.post("/api/v1/contacts", "[1, 2]", content_type="application/json")
    _error(response, 400, "MALFORMED_REQUEST")
