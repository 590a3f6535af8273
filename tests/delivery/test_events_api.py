"""GET /api/v1/events: the workspace's event stream, newest first, with its filters (docs/architecture.md#events,
docs/decisions/017)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from delivery.models import Event
from delivery.services import delivery_send_batch
from tests.factories import EventFactory, SendingDomainFactory

URL = "/api/v1/events"
T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content[:300]
    return response.json()["results"]


def ids(response) -> list[str]:
    return [row["id"] for row in results(response)]


def sid(*events: Event) -> list[str]:
    return [str(event.id) for event in events]


def assert_rejected(response, field: str) -> None:
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert field in body["error"]["details"], body


# --- listing ---------------------------------------------------------------------------------------------


def test_lists_the_workspaces_events_newest_first(api, workspace):
    first, second, third = (EventFactory(workspace=workspace) for _ in range(3))

    assert ids(api.get(URL)) == sid(third, second, first)


def test_an_event_renders_every_field_with_utc_times_and_string_ids(api, workspace):
    campaign_id, run_id = uuid.uuid4(), uuid.uuid4()
    event = EventFactory(
        workspace=workspace,
        type=Event.Type.CLICKED,
        occurred_at=datetime(2026, 6, 10, 14, 30, 5, tzinfo=UTC),
        email="ann@example.org",
        message_id="<abc@mail.example.com>",
        delivery_id=42,
        campaign_id=campaign_id,
        run_id=run_id,
        data={"url": "https://shop.example.com/", "user_agent": "TestMail/1.0"},
    )

    [row] = results(api.get(URL))

    assert row == {
        "id": str(event.id),
        "type": "clicked",
        "occurred_at": "2026-06-10T14:30:05Z",
        "email": "ann@example.org",
        "message_id": "<abc@mail.example.com>",
        "campaign_id": str(campaign_id),
        "run_id": str(run_id),
        "batch_id": None,
        "data": {"url": "https://shop.example.com/", "user_agent": "TestMail/1.0"},
    }


def test_a_campaign_lifecycle_event_has_no_recipient_and_null_references(api, workspace):
    campaign_id = uuid.uuid4()
    EventFactory(workspace=workspace, type="campaign.sending", email="", message_id="", campaign_id=campaign_id)

    [row] = results(api.get(URL))

    assert (row["type"], row["email"], row["message_id"]) == ("campaign.sending", "", "")
    assert (row["campaign_id"], row["run_id"], row["batch_id"]) == (str(campaign_id), None, None)


# --- filters ---------------------------------------------------------------------------------------------


def test_filter_by_one_type(api, workspace):
    EventFactory(workspace=workspace, type="sent")
    opened = EventFactory(workspace=workspace, type="opened")

    assert ids(api.get(f"{URL}?type=opened")) == sid(opened)


def test_filter_by_several_types_repeats_the_parameter(api, workspace):
    opened = EventFactory(workspace=workspace, type="opened")
    EventFactory(workspace=workspace, type="sent")
    clicked = EventFactory(workspace=workspace, type="clicked")

    assert ids(api.get(f"{URL}?type=opened&type=clicked")) == sid(clicked, opened)


def test_filter_by_a_campaign_lifecycle_type(api, workspace):
    EventFactory(workspace=workspace, type="campaign.sending")
    finished = EventFactory(workspace=workspace, type="campaign.finished")

    assert ids(api.get(f"{URL}?type=campaign.finished")) == sid(finished)


def test_an_unknown_type_is_400_naming_the_field(api):
    assert_rejected(api.get(f"{URL}?type=opened&type=read"), "type")


def test_comma_separated_types_are_400_not_silently_one_type(api, workspace):
    # The documented form is the repeated parameter; a comma list is refused rather than half-understood.
    EventFactory(workspace=workspace, type="opened")

    assert_rejected(api.get(f"{URL}?type=opened,clicked"), "type")


def test_filter_by_campaign_id(api, workspace):
    campaign_id = uuid.uuid4()
    wanted = EventFactory(workspace=workspace, campaign_id=campaign_id)
    EventFactory(workspace=workspace, campaign_id=uuid.uuid4())
    EventFactory(workspace=workspace)

    assert ids(api.get(f"{URL}?campaign_id={campaign_id}")) == sid(wanted)


def test_filter_by_run_id(api, workspace):
    campaign_id, run_id = uuid.uuid4(), uuid.uuid4()
    wanted = EventFactory(workspace=workspace, campaign_id=campaign_id, run_id=run_id)
    EventFactory(workspace=workspace, campaign_id=campaign_id, run_id=uuid.uuid4())

    assert ids(api.get(f"{URL}?run_id={run_id}")) == sid(wanted)


def test_filter_by_batch_id(api, workspace):
    batch_id = uuid.uuid4()
    queued = EventFactory(workspace=workspace, type="queued", batch_id=batch_id, message_id=str(uuid.uuid4()))
    sent = EventFactory(workspace=workspace, type="sent", batch_id=batch_id, message_id=str(uuid.uuid4()))
    EventFactory(workspace=workspace, batch_id=uuid.uuid4())

    assert ids(api.get(f"{URL}?batch_id={batch_id}")) == sid(sent, queued)


def test_filter_by_a_transactional_message_id(api, workspace):
    message_id = str(uuid.uuid4())
    queued = EventFactory(workspace=workspace, type="queued", message_id=message_id)
    EventFactory(workspace=workspace, type="queued", message_id=str(uuid.uuid4()))
    sent = EventFactory(workspace=workspace, type="sent", message_id=message_id)

    assert ids(api.get(f"{URL}?message_id={message_id}")) == sid(sent, queued)


def test_filter_by_a_campaign_message_id_header(api, workspace):
    wanted = EventFactory(workspace=workspace, message_id="<1.abc@mail.example.com>")
    EventFactory(workspace=workspace, message_id="<2.abc@mail.example.com>")

    assert ids(api.get(URL, {"message_id": "<1.abc@mail.example.com>"})) == sid(wanted)


def test_an_empty_message_id_filter_is_no_filter(api, workspace):
    # Not "events without a message id": those are not in event_message_idx, and nobody asks for them.
    events = [EventFactory(workspace=workspace, message_id=""), EventFactory(workspace=workspace)]

    assert len(ids(api.get(f"{URL}?message_id="))) == len(events)


def test_filter_by_email_is_case_insensitive_for_lower_cased_addresses(api, workspace):
    wanted = EventFactory(workspace=workspace, email="ann@example.org")
    EventFactory(workspace=workspace, email="bob@example.org")

    assert ids(api.get(URL, {"email": " Ann@Example.ORG "})) == sid(wanted)


def test_filter_by_email_finds_a_transactional_address_stored_as_given(api, workspace):
    # Transactional messages keep the address as the request gave it (decision 012).
    as_given = EventFactory(workspace=workspace, email="Ann@Example.org", batch_id=uuid.uuid4())
    lowered = EventFactory(workspace=workspace, email="ann@example.org")

    assert ids(api.get(URL, {"email": "Ann@Example.org"})) == sid(lowered, as_given)
    assert ids(api.get(URL, {"email": "ann@example.org"})) == sid(lowered)


def test_since_is_inclusive_and_until_exclusive(api, workspace):
    before = EventFactory(workspace=workspace, occurred_at=T0 - timedelta(seconds=1))
    at_since = EventFactory(workspace=workspace, occurred_at=T0)
    inside = EventFactory(workspace=workspace, occurred_at=T0 + timedelta(minutes=30))
    at_until = EventFactory(workspace=workspace, occurred_at=T0 + timedelta(hours=1))

    assert ids(api.get(URL, {"since": "2026-06-10T12:00:00Z"})) == sid(at_until, inside, at_since)
    assert ids(api.get(URL, {"until": "2026-06-10T13:00:00Z"})) == sid(inside, at_since, before)
    assert ids(api.get(URL, {"since": "2026-06-10T12:00:00Z", "until": "2026-06-10T13:00:00Z"})) == sid(
        inside, at_since
    )


def test_since_and_until_honour_their_offset(api, workspace):
    event = EventFactory(workspace=workspace, occurred_at=T0)  # 12:00Z is 19:00 in Jakarta

    assert ids(api.get(URL, {"since": "2026-06-10T19:00:00+07:00"})) == sid(event)
    assert ids(api.get(URL, {"since": "2026-06-10T19:00:01+07:00"})) == []


def test_since_equal_to_until_is_an_empty_window_not_an_error(api, workspace):
    EventFactory(workspace=workspace, occurred_at=T0)

    assert ids(api.get(URL, {"since": "2026-06-10T12:00:00Z", "until": "2026-06-10T12:00:00Z"})) == []


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize(
    "value", ["2026-06-10T12:00:00", "2026-06-10", "yesterday", "2026-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]
)
def test_a_naive_or_malformed_instant_is_400_naming_the_field(api, field, value):
    assert_rejected(api.get(URL, {field: value}), field)


def test_since_after_until_is_400(api):
    assert_rejected(api.get(URL, {"since": "2026-06-10T13:00:00Z", "until": "2026-06-10T12:00:00Z"}), "since")


@pytest.mark.parametrize("field", ["campaign_id", "run_id", "batch_id"])
@pytest.mark.parametrize("value", ["not-a-uuid", "%00", "1" * 300])
def test_a_malformed_uuid_is_400_naming_the_field(api, field, value):
    assert_rejected(api.get(f"{URL}?{field}={value}"), field)


@pytest.mark.parametrize("field", ["email", "message_id"])
def test_nul_or_overlong_text_filters_are_400_naming_the_field(api, field):
    assert_rejected(api.get(f"{URL}?{field}=%00"), field)
    assert_rejected(api.get(URL, {field: "x" * 300}), field)


def test_filters_combine(api, workspace):
    campaign_id = uuid.uuid4()
    wanted = EventFactory(workspace=workspace, campaign_id=campaign_id, type="opened", occurred_at=T0)
    EventFactory(workspace=workspace, campaign_id=campaign_id, type="opened", occurred_at=T0 - timedelta(days=1))
    EventFactory(workspace=workspace, campaign_id=campaign_id, type="sent", occurred_at=T0)
    EventFactory(workspace=workspace, campaign_id=uuid.uuid4(), type="opened", occurred_at=T0)

    query = {"campaign_id": str(campaign_id), "type": ["opened", "clicked"], "since": "2026-06-10T00:00:00Z"}
    assert ids(api.get(URL, query)) == sid(wanted)

    email_and_message = {"email": wanted.email, "message_id": wanted.message_id, "until": "2026-06-11T00:00:00Z"}
    assert ids(api.get(URL, email_and_message)) == sid(wanted)


# --- pagination ------------------------------------------------------------------------------------------


def test_pages_are_newest_first_with_count_and_links(api, workspace):
    events = [EventFactory(workspace=workspace) for _ in range(5)]

    first = api.get(f"{URL}?page_size=2&type=sent").json()
    second = api.get(first["next"]).json()
    last = api.get(second["next"]).json()

    assert first["count"] == 5
    assert first["previous"] is None
    assert "type=sent" in first["next"]
    assert [row["id"] for row in first["results"] + second["results"] + last["results"]] == sid(*reversed(events))
    assert last["next"] is None


def test_page_size_is_capped(api, workspace, settings):
    settings.API_MAX_PAGE_SIZE = 3
    for _ in range(5):
        EventFactory(workspace=workspace)

    body = api.get(f"{URL}?page_size=100").json()

    assert (body["count"], len(body["results"])) == (5, 3)


def test_a_page_past_the_end_is_404_like_every_list(api, workspace):
    EventFactory(workspace=workspace)

    response = api.get(f"{URL}?page=2")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_a_page_costs_the_same_queries_whatever_its_size(api, workspace):
    def queries(size: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert len(results(api.get(f"{URL}?page_size={size}"))) == min(size, 20)
        return len(captured)

    for _ in range(20):
        EventFactory(workspace=workspace)
    api.get(URL)  # the key's first use writes last_used_at; measure after it

    assert queries(2) == queries(20)


# --- tenancy and authentication --------------------------------------------------------------------------


def test_another_workspaces_key_sees_none_of_the_events(api, workspace, other_api):
    EventFactory(workspace=workspace)

    body = other_api.get(URL).json()

    assert (body["count"], body["results"]) == (0, [])


def test_filters_with_another_workspaces_ids_give_an_empty_list(api, other_workspace):
    campaign_id, run_id, batch_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    theirs = EventFactory(workspace=other_workspace, campaign_id=campaign_id, run_id=run_id, email="eve@example.org")
    EventFactory(workspace=other_workspace, batch_id=batch_id, message_id=str(uuid.uuid4()))

    for query in (
        {"campaign_id": str(campaign_id)},
        {"run_id": str(run_id)},
        {"batch_id": str(batch_id)},
        {"message_id": theirs.message_id},
        {"email": theirs.email},
    ):
        response = api.get(URL, query)
        assert response.status_code == 200, query
        assert response.json()["count"] == 0, query


def test_without_a_key_is_401_with_the_envelope(anon):
    response = anon.get(URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


# --- through the real send path --------------------------------------------------------------------------


def test_a_sent_campaign_message_is_listed_by_campaign_and_by_its_message_id(api, campaign, make_deliveries, sink):
    [delivery] = make_deliveries(1)
    delivery_send_batch(delivery_ids=[delivery.id])
    delivery.refresh_from_db()

    finished, row = results(api.get(URL, {"campaign_id": str(campaign.id)}))  # newest first

    assert finished["type"] == "campaign.finished"  # the one-message run closed with the batch
    assert (row["type"], row["email"], row["run_id"]) == ("sent", delivery.email, str(delivery.run_id))
    assert row["message_id"] == sink.messages[0].message["Message-ID"] == delivery.message_id
    assert row["occurred_at"].endswith("Z")
    assert ids(api.get(URL, {"message_id": row["message_id"]})) == [row["id"]]
    assert ids(api.get(URL, {"email": delivery.email.upper(), "type": "sent"})) == [row["id"]]


def test_a_bounce_through_the_real_send_path_carries_its_reason(api, make_deliveries, sink):
    [delivery] = make_deliveries(1)
    sink.handler.reject[delivery.email] = "550 5.1.1 No such user"
    delivery_send_batch(delivery_ids=[delivery.id])

    [row] = results(api.get(URL, {"type": "bounced"}))

    assert row["email"] == delivery.email
    assert "550" in row["data"]["reason"]


def test_a_transactional_message_is_listed_by_its_message_id_batch_and_address(sandbox_api, workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    accepted = sandbox_api.post(
        "/api/v1/transactional?priority=high",
        {
            "from": {"email": "alerts@mail.example.com"},
            "to": [{"email": "Ann@Example.org"}],
            "subject": "Reset your password",
            "text": "Use this link.",
        },
        format="json",
    ).json()

    [row] = results(sandbox_api.get(URL, {"message_id": accepted["message_id"]}))

    assert (row["email"], row["batch_id"], row["campaign_id"]) == ("Ann@Example.org", accepted["batch_id"], None)
    assert ids(sandbox_api.get(URL, {"batch_id": accepted["batch_id"]})) == [row["id"]]
    assert ids(sandbox_api.get(URL, {"email": "Ann@Example.org"})) == [row["id"]]
