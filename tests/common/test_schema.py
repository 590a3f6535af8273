import pytest
import yaml

EXPECTED_PATHS = {
    "/api/v1/contacts",
    "/api/v1/contacts/{id}",
    "/api/v1/contacts/import",
    "/api/v1/labels",
    "/api/v1/labels/{id}",
    "/api/v1/segments",
    "/api/v1/segments/{id}",
    "/api/v1/suppressions",
    "/api/v1/suppressions/{id}",
    "/api/v1/sending-domains",
    "/api/v1/sending-domains/{id}",
    "/api/v1/sending-domains/{id}/verify",
    "/api/v1/templates",
    "/api/v1/templates/{id}",
}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/v1/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_schema_lists_every_audience_endpoint(schema):
    assert set(schema["paths"]) >= EXPECTED_PATHS


def test_every_operation_documents_the_error_envelope(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation["responses"]
            assert "401" in responses, f"{method.upper()} {path} does not document 401"
            if "{" in path:
                assert "404" in responses, f"{method.upper()} {path} does not document 404"
            if method in {"post", "put", "patch"}:
                assert "400" in responses, f"{method.upper()} {path} does not document 400"
            error = responses["401"]["content"]["application/json"]["schema"]["$ref"]
            assert error.endswith("/ErrorEnvelope")


def test_every_post_documents_the_idempotency_key_header_and_its_errors(schema):
    posts = [(path, ops["post"]) for path, ops in schema["paths"].items() if "post" in ops]
    assert posts
    for path, operation in posts:
        [header] = [p for p in operation.get("parameters", []) if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header" and not header.get("required", False), path
        assert header["schema"]["maxLength"] == 255, path
        responses = operation["responses"]
        assert "IDEMPOTENCY_KEY_IN_USE" in responses["409"]["description"], path
        assert "IDEMPOTENCY_KEY_REUSED" in responses["422"]["description"], path


def test_an_operations_own_409_keeps_its_meaning_next_to_the_idempotency_one(schema):
    send = schema["paths"]["/api/v1/campaigns/{id}/send"]["post"]["responses"]
    assert "status does not allow" in send["409"]["description"]
    assert "IDEMPOTENCY_KEY_IN_USE" in send["409"]["description"]
    assert "CAMPAIGN_NOT_READY" in send["422"]["description"]


def test_the_idempotency_key_is_not_offered_on_other_methods(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method != "post" and isinstance(operation, dict):
                names = [p["name"] for p in operation.get("parameters", [])]
                assert "Idempotency-Key" not in names, f"{method.upper()} {path}"


def test_bearer_auth_is_the_security_scheme(schema):
    assert schema["components"]["securitySchemes"]["BearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_swagger_ui_is_served(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_schema_generates_without_warnings_and_validates(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.stat().st_size > 0
