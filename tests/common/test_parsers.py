"""common.parsers.ObjectJSONParser: nesting depth and unpaired surrogates are refused when the body is parsed,
inside the envelope (docs/decisions/022)."""

import pytest

from audience.models import Contact, Segment
from campaigns.models import Campaign
from common.parsers import MAX_JSON_DEPTH
from transactional.models import TransactionalMessage


def post_raw(api, url: str, body: str):
    return api.post(url, data=body, content_type="application/json")


def nested_arrays(levels: int) -> str:
    return "[" * levels + "]" * levels


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    return body["error"]


@pytest.mark.parametrize("levels", [400, 1_000, 100_000])
def test_deeply_nested_contact_attributes_are_malformed_request(api, levels):
    body = '{"email": "ann@example.org", "attributes": {"a": ' + nested_arrays(levels) + "}}"
    error = error_of(post_raw(api, "/api/v1/contacts", body), 400, "MALFORMED_REQUEST")
    assert str(MAX_JSON_DEPTH) in error["message"]
    assert not Contact.objects.exists()


@pytest.mark.parametrize("levels", [400, 1_000])
def test_deeply_nested_segment_rules_are_malformed_request(api, levels):
    body = '{"name": "deep", "rules": ' + nested_arrays(levels) + "}"
    error_of(post_raw(api, "/api/v1/segments", body), 400, "MALFORMED_REQUEST")
    assert not Segment.objects.exists()


def test_deeply_nested_substitution_data_is_malformed_request(api):
    body = '{"name": "deep", "substitution_data": {"a": ' + nested_arrays(1_000) + "}}"
    error_of(post_raw(api, "/api/v1/campaigns", body), 400, "MALFORMED_REQUEST")
    assert not Campaign.objects.exists()


def test_body_at_the_depth_limit_is_parsed(api):
    # The body object is level 1 and "attributes" level 2, so this many arrays reach the limit exactly.
    body = '{"email": "ann@example.org", "attributes": {"a": ' + nested_arrays(MAX_JSON_DEPTH - 2) + "}}"
    response = post_raw(api, "/api/v1/contacts", body)
    assert response.status_code == 201, response.content[:300]


def test_body_one_level_past_the_limit_is_malformed_request(api):
    body = '{"email": "ann@example.org", "attributes": {"a": ' + nested_arrays(MAX_JSON_DEPTH - 1) + "}}"
    error_of(post_raw(api, "/api/v1/contacts", body), 400, "MALFORMED_REQUEST")


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("attributes", '{"email": "ann@example.org", "attributes": {"plan": "\\ud800"}}'),
        ("attributes", '{"email": "ann@example.org", "attributes": {"\\udfff": "key"}}'),
        ("timezone", '{"email": "ann@example.org", "timezone": "Europe/\\ud800"}'),
    ],
)
def test_lone_surrogate_in_a_contact_is_a_validation_error_naming_the_field(api, field, body):
    error = error_of(post_raw(api, "/api/v1/contacts", body), 400, "VALIDATION_ERROR")
    assert list(error["details"]) == [field]
    assert not Contact.objects.exists()


def test_lone_surrogate_in_segment_rules_is_a_validation_error_naming_rules(api):
    body = '{"name": "s", "rules": {"all": [{"attribute": "\\ud800", "op": "eq", "value": 1}]}}'
    error = error_of(post_raw(api, "/api/v1/segments", body), 400, "VALIDATION_ERROR")
    assert list(error["details"]) == ["rules"]
    assert "rules.all[0].attribute" in error["details"]["rules"][0]


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("headers", '"headers": {"X-Tag": "\\ud800"}'),
        ("headers", '"headers": {"\\ud800": "x"}'),
        ("cc", '"cc": [{"email": "c@example.org", "name": "\\udc00"}]'),
    ],
)
def test_lone_surrogate_in_transactional_data_is_a_validation_error_naming_the_field(api, field, extra):
    body = (
        '{"from": {"email": "a@example.com"}, "to": [{"email": "b@example.org"}], "subject": "s", "html": "h", '
        + extra
        + "}"
    )
    error = error_of(post_raw(api, "/api/v1/transactional?priority=high", body), 400, "VALIDATION_ERROR")
    assert list(error["details"]) == [field]
    assert not TransactionalMessage.objects.exists()


def test_lone_surrogate_in_a_top_level_key_is_reported_without_echoing_it(api):
    response = post_raw(api, "/api/v1/labels", '{"\\ud800": 1}')
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]) == ["non_field_errors"]
    assert "\\ud800" in error["details"]["non_field_errors"][0]


def test_a_surrogate_pair_is_one_character_and_accepted(api):
    response = post_raw(api, "/api/v1/labels", '{"name": "party \\ud83c\\udf89"}')
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "party \U0001f389"


def test_a_multipart_body_to_a_json_endpoint_is_415(api):
    response = api.post("/api/v1/labels", {"name": "vip"}, format="multipart")
    error_of(response, 415, "UNSUPPORTED_MEDIA_TYPE")
