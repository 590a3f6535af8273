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


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def _component(schema, ref_holder: dict) -> dict:
    return schema["components"]["schemas"][ref_holder["$ref"].rsplit("/", 1)[1]]


def test_only_the_csv_import_takes_multipart(schema):
    for path, method, operation in _operations(schema):
        media_types = set(operation.get("requestBody", {}).get("content", {}))
        if path == "/api/v1/contacts/import":
            assert media_types == {"multipart/form-data"}
        else:
            assert media_types <= {"application/json"}, f"{method.upper()} {path} takes {media_types}"


def test_a_blank_verified_by_is_in_the_schema(schema):
    verified_by = schema["components"]["schemas"]["SendingDomainOutput"]["properties"]["verified_by"]
    enums = [_component(schema, option)["enum"] for option in verified_by["oneOf"]]
    assert sorted(value for values in enums for value in values) == ["", "admin", "dns"]


def test_campaign_runs_document_only_the_parameters_they_read(schema):
    parameters = schema["paths"]["/api/v1/campaigns/{id}/runs"]["get"]["parameters"]
    assert sorted(p["name"] for p in parameters) == ["id", "page", "page_size"]


def test_schedule_type_is_an_enum(schema):
    schedule_type = schema["components"]["schemas"]["ScheduleInputRequest"]["properties"]["schedule_type"]
    assert _component(schema, schedule_type["allOf"][0])["enum"] == ["immediate", "scheduled", "recurring"]


def test_strict_input_bodies_refuse_unknown_fields_in_the_schema(schema):
    for name in ("LabelInputRequest", "ContactInputRequest", "CampaignInputRequest", "TransactionalInputRequest"):
        assert schema["components"]["schemas"][name]["additionalProperties"] is False, name


def test_contact_attributes_and_substitution_data_are_objects(schema):
    components = schema["components"]["schemas"]
    assert components["ContactInputRequest"]["properties"]["attributes"]["type"] == "object"
    assert components["CampaignInputRequest"]["properties"]["substitution_data"]["type"] == "object"


def test_every_operation_documents_the_answers_it_can_give(schema):
    for path, method, operation in _operations(schema):
        responses = operation["responses"]
        label = f"{method.upper()} {path}"
        assert "414" in responses, label
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "400" in responses, label
        if method == "get" and {"page", "page_size"} <= {p["name"] for p in operation.get("parameters", [])}:
            assert "404" in responses, label  # a page past the last one
        if "requestBody" in operation:
            assert "415" in responses, label
