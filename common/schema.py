"""OpenAPI: every operation documents the error envelope for the errors it can answer with."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code, e.g. VALIDATION_ERROR.")
    message = serializers.CharField(help_text="What went wrong, for a human.")
    details = serializers.DictField(help_text="Per-field messages or extra context; may be empty.")


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorEnvelopeSerializer, description=description)


class EnvelopeAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        extra: dict[str, str] = {}
        if self.method in {"POST", "PUT", "PATCH"}:
            extra["400"] = "MALFORMED_REQUEST or VALIDATION_ERROR (details map each field to its messages)."
            extra["413"] = "PAYLOAD_TOO_LARGE: the body is over the configured limit."
        elif self.method == "GET" and self._is_list_view():
            extra["400"] = "VALIDATION_ERROR: a filter value is invalid."
        if not public:
            extra["401"] = "UNAUTHENTICATED: no key, an unknown key or a revoked key."
            extra["429"] = "RATE_LIMITED: too many requests; see Retry-After."
        if "{" in self.path:
            extra["404"] = "RESOURCE_NOT_FOUND: no such object in this workspace."
        for code, description in extra.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(error_response(description), code)
        return responses
