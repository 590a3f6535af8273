"""OpenAPI: every operation documents the error envelope for the errors it can answer with."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from common.serializers import StrictInputSerializer


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code, e.g. VALIDATION_ERROR.")
    message = serializers.CharField(help_text="What went wrong, for a human.")
    details = serializers.DictField(help_text="Per-field messages or extra context; may be empty.")


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorEnvelopeSerializer, description=description)


# Honoured on every authenticated POST by accounts.api.WorkspaceApiMixin (docs/decisions/023).
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any string up to 255 characters, unique per request you mean to make once. The same key with the "
        "same method, path and body within 24 hours replays the first response (status and body, with "
        "`Idempotent-Replayed: true`) and does nothing again. Keys are per workspace."
    ),
)
IDEMPOTENCY_RESPONSES = {
    "400": "VALIDATION_ERROR on `Idempotency-Key`: blank or over 255 characters.",
    "409": "IDEMPOTENCY_KEY_IN_USE: a request with this Idempotency-Key is still running; retry later.",
    "422": "IDEMPOTENCY_KEY_REUSED: this Idempotency-Key was used for a different request.",
}


class EnvelopeAutoSchema(AutoSchema):
    """Adds to every operation the error answers it can give (docs/decisions/022 lists why each is there),
    and says that strict input serializers refuse fields they do not list (docs/decisions/002)."""

    def _is_public(self) -> bool:
        return any(isinstance(p, AllowAny) for p in self.view.get_permissions())

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if self.method == "POST" and not self._is_public():
            parameters = [*parameters, IDEMPOTENCY_KEY]
        return parameters

    def _postprocess_serializer_schema(self, schema, serializer, direction):
        schema = super()._postprocess_serializer_schema(schema, serializer, direction)
        if direction == "request" and isinstance(serializer, StrictInputSerializer):
            schema["additionalProperties"] = False
        return schema

    def _has_query_parameters(self) -> bool:
        return any(parameter.get("in") == "query" for parameter in self._get_parameters())

    def _is_paginated(self) -> bool:
        return self.method == "GET" and self._is_list_view() and self._get_paginator() is not None

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        public = self._is_public()
        extra: dict[str, str] = {}
        if self.method in {"POST", "PUT", "PATCH"}:
            extra["400"] = "MALFORMED_REQUEST or VALIDATION_ERROR (details map each field to its messages)."
            extra["413"] = "PAYLOAD_TOO_LARGE: the body is over the configured limit."
            if self.get_request_serializer() is not None:  # an action without a body never parses one
                extra["415"] = "UNSUPPORTED_MEDIA_TYPE: the body is not of the media type this operation takes."
        elif self._has_query_parameters():
            extra["400"] = "VALIDATION_ERROR: a query parameter is invalid."
        if not public:
            extra["401"] = "UNAUTHENTICATED: no key, an unknown, revoked or expired key."
            extra["429"] = "RATE_LIMITED: too many requests; see Retry-After."
        if "{" in self.path:
            extra["404"] = "RESOURCE_NOT_FOUND: no such object in this workspace."
        elif self._is_paginated():
            extra["404"] = "RESOURCE_NOT_FOUND: the page does not exist (page is past the last one or below 1)."
        for code, description in extra.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(error_response(description), code)
        if self.method == "POST" and not public:
            for code, description in IDEMPOTENCY_RESPONSES.items():
                if code in responses:  # the operation answers this status for its own reasons too
                    responses[code]["description"] = f"{responses[code]['description']} Or {description}"
                else:
                    responses[code] = self._get_response_for_code(error_response(description), code)
        if "414" not in responses:
            # The HTTP server answers this one before Django sees the request (gunicorn's limit_request_line,
            # 4094 bytes), so with its own plain body rather than the envelope.
            responses["414"] = {"description": "The request line (path and query) is longer than the server accepts."}
        return responses
