"""The rules of a campaign's fields are the service's (campaigns.services._clean_fields and the two
`campaign_*_clean` functions): from_email lower-casing, the audience's shape and size, tracking defaults and
the number of labels. The API (whose serializer only parses types) and the admin form get its answers."""

import json

import pytest

from campaigns import services
from campaigns.models import AUDIENCE_MAX_IDS, Campaign
from common import errors
from tests.factories import LabelFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/campaigns/campaign/add/"
NOT_AN_OBJECT = 'The audience must be an object, e.g. {"include_labels": ["<label id>"]}.'


def _api_create(api, **fields):
    return api.post("/api/v1/campaigns", {"name": "Launch", **fields}, format="json")


def _admin_create(admin_client, workspace, **fields):
    """The admin's add form: the audience as its four choices of names (ids posted), tracking as JSON."""
    data = {"workspace": str(workspace.pk), "name": "Launch", "tracking": ""}
    for name, value in fields.items():
        if name == "audience":
            data.update(value)
        else:
            data[name] = json.dumps(value) if name == "tracking" else value
    return admin_client.post(ADD, data)


def _service_create(workspace, **fields):
    return services.campaign_create(workspace=workspace, fields={"name": "Launch", **fields})


def _form_errors(response) -> dict:
    assert response.status_code == 200, "the admin form was expected to refuse"
    return response.context["adminform"].form.errors


def _refusal(workspace, **fields) -> dict:
    with pytest.raises(errors.ValidationError) as refused:
        _service_create(workspace, **fields)
    return refused.value.details


def _stored(name: str = "Launch") -> Campaign:
    return Campaign.objects.get(name=name)


def _each_path(api, admin_client, workspace, **fields) -> list[Campaign]:
    """Create the same campaign through the API, the admin form and the service; return the three rows."""
    assert _api_create(api, **fields).status_code == 201
    via_api = _stored()
    via_api.delete()
    assert _admin_create(admin_client, workspace, **fields).status_code == 302
    via_admin = _stored()
    via_admin.delete()
    return [via_api, via_admin, _service_create(workspace, **fields)]


# --- from_email -----------------------------------------------------------------------------------------


def test_from_email_is_lower_cased_alike_on_create(api, admin_client, workspace):
    rows = _each_path(api, admin_client, workspace, from_email="News@Mail.Example.COM")
    assert [row.from_email for row in rows] == ["news@mail.example.com"] * 3


def test_from_email_is_lower_cased_alike_on_edit(api, admin_client, ready_campaign):
    api.patch(f"/api/v1/campaigns/{ready_campaign.pk}", {"from_email": "API@Mail.Example.com"}, format="json")
    ready_campaign.refresh_from_db()
    via_api = ready_campaign.from_email

    form = {
        "name": ready_campaign.name,
        "subject": ready_campaign.subject,
        "from_email": "Admin@Mail.Example.com",
        "html": ready_campaign.html,
        "text": ready_campaign.text,
        **ready_campaign.audience,
        "tracking": json.dumps(ready_campaign.tracking),
    }
    assert admin_client.post(f"/admin/campaigns/campaign/{ready_campaign.pk}/change/", form).status_code == 302
    ready_campaign.refresh_from_db()
    via_admin = ready_campaign.from_email

    via_service = services.campaign_update(
        workspace=ready_campaign.workspace,
        campaign_id=ready_campaign.pk,
        fields={"from_email": " Svc@Mail.Example.com"},
    ).from_email
    assert [via_api, via_admin, via_service] == [
        "api@mail.example.com",
        "admin@mail.example.com",
        "svc@mail.example.com",
    ]


# --- audience -------------------------------------------------------------------------------------------


def test_the_audience_is_stored_in_one_shape_whoever_writes_it(api, admin_client, workspace, customers):
    rows = _each_path(api, admin_client, workspace, audience={"include_labels": [str(customers.pk)]})
    expected = {
        "include_labels": [str(customers.pk)],
        "exclude_labels": [],
        "include_segments": [],
        "exclude_segments": [],
    }
    assert [row.audience for row in rows] == [expected] * 3


def test_too_many_audience_ids_are_refused_alike(api, admin_client, workspace):
    ids = [str(label.pk) for label in LabelFactory.create_batch(AUDIENCE_MAX_IDS + 1, workspace=workspace)]
    message = f"At most {AUDIENCE_MAX_IDS} ids; this list has {AUDIENCE_MAX_IDS + 1}."

    via_service = _refusal(workspace, audience={"exclude_labels": ids})
    via_api = _api_create(api, audience={"exclude_labels": ids})
    via_admin = _admin_create(admin_client, workspace, audience={"exclude_labels": ids})

    assert via_service == {"audience.exclude_labels": [message]}
    assert (via_api.status_code, via_api.json()["error"]["details"]) == (400, via_service)
    assert _form_errors(via_admin)["exclude_labels"] == [f"audience.exclude_labels: {message}"]
    assert not Campaign.objects.exists()


def test_exactly_the_maximum_of_audience_ids_is_accepted(api, workspace):
    ids = [str(label.pk) for label in LabelFactory.create_batch(AUDIENCE_MAX_IDS, workspace=workspace)]
    assert _api_create(api, audience={"include_labels": ids}).status_code == 201


@pytest.mark.parametrize(
    ("audience", "key", "message"),
    [
        ({"everyone": True}, "audience.everyone", "Unknown field."),
        ({"include_labels": "x"}, "audience.include_labels", "Must be a list of ids (UUIDs)."),
        ({"include_segments": ["nope"]}, "audience.include_segments", "Must be a list of ids (UUIDs)."),
        (["not", "an", "object"], "audience", NOT_AN_OBJECT),
    ],
)
def test_a_misshapen_audience_is_refused_by_the_service(workspace, audience, key, message):
    # The admin cannot post one any more: it offers the workspace's labels and segments by name.
    assert _refusal(workspace, audience=audience) == {key: [message]}


def test_another_workspaces_label_is_unknown_alike(api, admin_client, workspace, other_workspace):
    foreign = str(LabelFactory(workspace=other_workspace).pk)
    message = f"Unknown label ids: {foreign}."
    assert _refusal(workspace, audience={"include_labels": [foreign]}) == {"audience.include_labels": [message]}
    assert _api_create(api, audience={"include_labels": [foreign]}).json()["error"]["details"] == {
        "audience.include_labels": [message]
    }
    admin = _admin_create(admin_client, workspace, audience={"include_labels": [foreign]})
    assert _form_errors(admin)["include_labels"] == [f"audience.include_labels: {message}"]


# --- tracking -------------------------------------------------------------------------------------------


def test_a_tracking_flag_left_out_takes_its_default_alike(api, admin_client, workspace):
    rows = _each_path(api, admin_client, workspace, tracking={"opens": False})
    assert [row.tracking for row in rows] == [{"opens": False, "clicks": True}] * 3


def test_no_tracking_at_all_is_both_flags_on_alike(api, admin_client, workspace):
    rows = _each_path(api, admin_client, workspace)
    assert [row.tracking for row in rows] == [{"opens": True, "clicks": True}] * 3


def test_an_edit_of_one_flag_keeps_the_other_alike(api, admin_client, ready_campaign):
    def reset():
        Campaign.objects.filter(pk=ready_campaign.pk).update(tracking={"opens": False, "clicks": True})

    reset()
    api.patch(f"/api/v1/campaigns/{ready_campaign.pk}", {"tracking": {"clicks": False}}, format="json")
    via_api = Campaign.objects.get(pk=ready_campaign.pk).tracking

    reset()
    form = {
        "name": ready_campaign.name,
        "subject": ready_campaign.subject,
        "from_email": ready_campaign.from_email,
        "html": ready_campaign.html,
        "text": ready_campaign.text,
        **ready_campaign.audience,
        "tracking": json.dumps({"clicks": False}),
    }
    admin_client.post(f"/admin/campaigns/campaign/{ready_campaign.pk}/change/", form)
    via_admin = Campaign.objects.get(pk=ready_campaign.pk).tracking

    reset()
    via_service = services.campaign_update(
        workspace=ready_campaign.workspace, campaign_id=ready_campaign.pk, fields={"tracking": {"clicks": False}}
    ).tracking
    assert [via_api, via_admin, via_service] == [{"opens": False, "clicks": False}] * 3


@pytest.mark.parametrize(
    ("tracking", "key", "message"),
    [
        ({"opens": "yes"}, "tracking.opens", "Must be true or false."),
        ({"bounces": True}, "tracking.bounces", "Unknown field."),
        ([True], "tracking", 'Tracking must be an object, e.g. {"opens": true, "clicks": false}.'),
    ],
)
def test_misshapen_tracking_is_refused_alike_by_admin_and_service(admin_client, workspace, tracking, key, message):
    assert _refusal(workspace, tracking=tracking) == {key: [message]}
    expected = message if key == "tracking" else f"{key}: {message}"
    assert _form_errors(_admin_create(admin_client, workspace, tracking=tracking))["tracking"] == [expected]


# --- labels ---------------------------------------------------------------------------------------------


def test_too_many_labels_are_refused_alike(api, admin_client, workspace):
    labels = LabelFactory.create_batch(Campaign.MAX_LABELS + 1, workspace=workspace)
    message = f"At most {Campaign.MAX_LABELS} labels; this list has {Campaign.MAX_LABELS + 1}."

    via_service = _refusal(workspace, labels=[label.pk for label in labels])
    via_api = _api_create(api, labels=[str(label.pk) for label in labels])
    via_admin = _admin_create(admin_client, workspace, labels=[str(label.pk) for label in labels])

    assert via_service == {"labels": [message]}
    assert via_api.json()["error"]["details"] == via_service
    assert _form_errors(via_admin)["labels"] == [message]
    assert not Campaign.objects.exists()
