"""No request, however malformed, gets a 500 (docs/architecture.md#errors): every write endpoint of the API with bodies
of every wrong shape, and every list with nonsense filters."""

import pytest

from tests.factories import (
    CampaignFactory,
    ContactFactory,
    LabelFactory,
    SegmentFactory,
    SendingDomainFactory,
    SuppressionFactory,
    TemplateFactory,
)

GARBAGE = [
    {},
    {"name": None, "email": None, "domain": None, "rules": None},
    {"name": 12, "email": 12, "domain": 12, "subject": 12, "html": 12, "rules": 12, "reason": 12},
    {"name": ["x"], "email": ["x"], "labels": "x", "audience": "x", "attributes": "x", "rules": ["x"]},
    {"name": "x" * 5000, "email": "a@" + "b" * 300 + ".com", "subject": "\x00", "timezone": "\x00"},
    {"labels": [None, 1, {}], "audience": {"include_labels": [None]}, "attributes": {"a": {"b": [1e308]}}},
    {"scheduled_at": 12, "timezone": ["x"], "recurring_config": "x", "send_time_optimization": []},
    {"schedule_type": "recurring", "recurring_config": {"frequency": None, "time": 9, "days_of_week": "mon"}},
    {"from": "x", "to": "x", "cc": {}, "attachments": "x", "headers": [], "scheduled_at": True},
    {"from": {"email": None}, "to": [None, {"email": []}], "attachments": [{"content": 5}], "headers": {"X": 1}},
    {"rules": {"all": [{"attribute": None, "op": "eq"}, {"any": "x"}, {"label": 5}]}},
    {"rules": {"all": [{"all": [{"all": [{"all": [{"all": [{"all": [{"all": []}]}]}]}]}]}]}},
]


@pytest.fixture
def objects(workspace):
    return {
        "contacts": ContactFactory(workspace=workspace),
        "labels": LabelFactory(workspace=workspace),
        "segments": SegmentFactory(workspace=workspace),
        "suppressions": SuppressionFactory(workspace=workspace),
        "sending-domains": SendingDomainFactory(workspace=workspace),
        "templates": TemplateFactory(workspace=workspace),
        "campaigns": CampaignFactory(workspace=workspace),
    }


def write_urls(objects):
    urls = [("post", f"/api/v1/{name}") for name in objects]
    urls += [("patch", f"/api/v1/{name}/{obj.pk}") for name, obj in objects.items() if name != "sending-domains"]
    campaign = objects["campaigns"].pk
    urls += [("post", f"/api/v1/campaigns/{campaign}/{action}") for action in ("schedule", "send", "duplicate")]
    urls += [
        ("post", "/api/v1/campaigns/create-send"),
        ("post", "/api/v1/transactional?priority=high"),
        ("post", "/api/v1/transactional?priority=%00"),
        ("post", f"/api/v1/sending-domains/{objects['sending-domains'].pk}/verify"),
    ]
    return urls


@pytest.mark.parametrize("body", GARBAGE, ids=range(len(GARBAGE)))
def test_no_write_endpoint_answers_500_to_a_malformed_body(api, objects, body, monkeypatch):
    import accounts.dns

    monkeypatch.setattr(accounts.dns, "txt_records", lambda name: ([], "stubbed: no DNS in tests"))
    for method, url in write_urls(objects):
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code < 500, (method, url, body, response.content[:300])
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}, (method, url, response.content[:300])


@pytest.mark.parametrize(
    "query",
    [
        "page=-1",
        "page_size=abc",
        "page_size=99999999999999999999",
        "status=%00",
        "label=not-a-uuid",
        "batch_id=x",
        "email=%00",
        "search=%00",
        "category=" + "x" * 3000,
        "contact_id=%00",
        "type=%00",
        "type=sent&type=" + "x" * 3000,
        "campaign_id=%00",
        "run_id=" + "f" * 3000,
        "message_id=%00",
        "since=%00",
        "since=99999-01-01T00:00:00Z",
        "until=0001-01-01T00:00:00%2B01:00",
        "since=2026-01-01T00:00:00Z&until=2025-01-01T00:00:00Z",
    ],
)
def test_no_list_answers_500_to_nonsense_filters(api, objects, query):
    campaign = objects["campaigns"].pk
    paths = [f"/api/v1/{name}" for name in objects] + [
        "/api/v1/transactional/messages",
        "/api/v1/events",
        "/api/v1/contacts/imports",
        f"/api/v1/campaigns/{campaign}/preview",
        f"/api/v1/campaigns/{campaign}/runs",
        f"/api/v1/segments/{objects['segments'].pk}/contacts",
    ]
    for path in paths:
        response = api.get(f"{path}?{query}")
        assert response.status_code < 500, (path, query, response.content[:300])
