"""One error hierarchy for the whole product. The API's exception handler turns each into the envelope
of docs/architecture.md#errors; services raise them, views never build error bodies themselves."""

from typing import Any


class ApplicationError(Exception):
    status = 400
    code = "BAD_REQUEST"
    default_message = "The request could not be processed."
    # The same request may succeed when sent again (a lock, a rate, a backing service). Such an answer is
    # not kept for an Idempotency-Key, so the client's retry with that key runs (docs/decisions/023).
    transient = False

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class MalformedRequest(ApplicationError):
    status = 400
    code = "MALFORMED_REQUEST"
    default_message = "The request body is not valid JSON."


class ValidationError(ApplicationError):
    status = 400
    code = "VALIDATION_ERROR"
    default_message = "The given data was invalid"

    @classmethod
    def for_field(cls, field: str, message: str) -> "ValidationError":
        return cls(details={field: [message]})


class Unauthenticated(ApplicationError):
    status = 401
    code = "UNAUTHENTICATED"
    default_message = "A valid API key is required: send 'Authorization: Bearer <key>'."


class PermissionDenied(ApplicationError):
    status = 403
    code = "PERMISSION_DENIED"
    default_message = "You do not have permission to perform this action."


class ContentRejected(ApplicationError):
    status = 403
    code = "CONTENT_REJECTED"
    default_message = "The content was rejected."


class NotFound(ApplicationError):
    status = 404
    code = "RESOURCE_NOT_FOUND"
    default_message = "The requested resource was not found."


class MethodNotAllowed(ApplicationError):
    status = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed."


class Conflict(ApplicationError):
    status = 409
    code = "CONFLICT"
    default_message = "The request conflicts with the current state of the resource."


class DatabaseBusy(Conflict):
    """A write that waited its whole timeout for another one (SQLite's single writer, a PostgreSQL row lock)
    outside the state changes that have their own code (docs/decisions/070)."""

    default_message = "Another change holds the lock this request needs; retry in a moment."
    transient = True


class IdempotencyKeyInUse(ApplicationError):
    status = 409
    code = "IDEMPOTENCY_KEY_IN_USE"
    default_message = "A request with this Idempotency-Key is still running; retry when it has finished."
    transient = True


class IdempotencyKeyReused(ApplicationError):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = (
        "This Idempotency-Key was already used for a different request (method, path or body); use a new key."
    )


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "The request body is too large."


class UnsupportedMediaType(ApplicationError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "Unsupported media type."


class RateLimited(ApplicationError):
    status = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests."
    transient = True

    def __init__(self, message: str | None = None, details: dict | None = None, retry_after: int | None = None):
        super().__init__(message, details)
        self.retry_after = retry_after


class ServiceUnavailable(ApplicationError):
    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "A backing service is unavailable; try again."
    transient = True
