from django.conf import settings

from common import errors
from common.exceptions import json_error


class ApiBodySizeLimitMiddleware:
    """Refuse an oversized API body before anything reads it.

    DRF parses from the request stream, which skips Django's DATA_UPLOAD_MAX_MEMORY_SIZE check on
    `request.body`, so the limit is enforced here from Content-Length (docs/architecture.md#errors: 413)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return json_error(errors.MalformedRequest("The Content-Length header is not a number."))
            limit = settings.API_MAX_BODY_BYTES
            if length > limit:
                return json_error(
                    errors.PayloadTooLarge(f"The request body is {length} bytes; the limit is {limit} bytes.")
                )
        return self.get_response(request)
