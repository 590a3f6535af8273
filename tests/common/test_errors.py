"""The error envelope of docs/architecture.md#errors for requests that never reach a service."""

import json

import pytest
from django.test import override_settings

from audience.models import Label


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def test_invalid_json_is_malformed_request(api):
    response = api.post("/api/v1/labels", data="{not json", content_type="application/json")
    assert_envelope(response, 400, "MALFORMED_REQUEST")


def test_json_array_body_is_malformed_request(api):
    response = api.post("/api/v1/labels", data="[1, 2]", content_type="application/json")
    error = assert_envelope(response, 400, "MALFORMED_REQUEST")
    assert "JSON object" in error["message"]


def test_nan_in_json_is_malformed_request(api):
    response = api.post("/api/v1/labels", data='{"name": NaN}', content_type="application/json")
    assert_envelope(response, 400, "MALFORMED_REQUEST")


def test_body_that_is_not_utf8_is_malformed_request(api):
    response = api.post("/api/v1/labels", data=b'{"name": "\xff\xfe"}', content_type="application/json")
    assert_envelope(response, 400, "MALFORMED_REQUEST")


def test_field_of_the_wrong_type_is_validation_error(api):
    response = api.post("/api/v1/labels", data={"name": {"nested": True}}, format="json")
    error = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "name" in error["details"]


def test_unknown_field_is_validation_error_naming_it(api):
    response = api.post("/api/v1/labels", data={"name": "vip", "colour": "red"}, format="json")
    error = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert error["details"] == {"colour": ["Unknown field."]}
    assert not Label.objects.exists()


@override_settings(API_MAX_BODY_BYTES=1024)
def test_oversized_body_is_413_and_stores_nothing(api):
    response = api.post("/api/v1/labels", data=json.dumps({"name": "x" * 2000}), content_type="application/json")
    error = assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert "1024" in error["message"]
    assert not Label.objects.exists()


def test_unknown_api_path_is_404_envelope(api):
    assert_envelope(api.get("/api/v1/no-such-thing"), 404, "RESOURCE_NOT_FOUND")


def test_method_not_allowed_is_405_envelope(api):
    assert_envelope(api.put("/api/v1/labels", data={}, format="json"), 405, "METHOD_NOT_ALLOWED")


def test_unsupported_media_type_is_415_envelope(api):
    response = api.post("/api/v1/labels", data="name=vip", content_type="text/plain")
    assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_malformed_uuid_in_path_is_404(api):
    assert_envelope(api.get("/api/v1/labels/not-a-uuid"), 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize("page", ["0", "abc", "999"])
def test_invalid_page_is_404_envelope(api, page):
    assert_envelope(api.get(f"/api/v1/labels?page={page}"), 404, "RESOURCE_NOT_FOUND")


def test_page_size_is_capped(api, workspace, settings):
    settings.API_MAX_PAGE_SIZE = 3
    Label.objects.bulk_create([Label(workspace=workspace, name=f"l{i}") for i in range(5)])
    body = api.get("/api/v1/labels?page_size=1000").json()
    assert body["count"] == 5
    assert len(body["results"]) == 3
    assert set(body) == {"count", "next", "previous", "results"}


def test_rate_limit_is_429_with_retry_after(api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "2/min"}}
    assert api.get("/api/v1/labels").status_code == 200
    assert api.get("/api/v1/labels").status_code == 200
    response = api.get("/api/v1/labels")
    assert_envelope(response, 429, "RATE_LIMITED")
    assert int(response["Retry-After"]) > 0


def test_unexpected_error_is_500_envelope_without_traceback(api, monkeypatch):
    import audience.apis

    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(audience.apis.LabelViewSet, "list_selector", staticmethod(explode))
    response = api.get("/api/v1/labels")
    error = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "secret internals" not in response.content.decode()
    assert error["details"] == {}
