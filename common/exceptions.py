"""The one exception handler of the API (REST_FRAMEWORK["EXCEPTION_HANDLER"]): every error becomes
`{"error": {"code", "message", "details"}}` (docs/architecture.md#errors). Nothing reaches a 500 with a stack trace:
unexpected exceptions are logged and answered with an INTERNAL_ERROR envelope."""

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from common import errors
from common.db import is_lock_timeout

logger = logging.getLogger(__name__)


def envelope(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _flatten_details(detail) -> dict:
    """DRF's nested ErrorDetail structure → {field: [messages]} with plain strings."""
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": _plain(detail)}
    return {"non_field_errors": [str(detail)]}


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return [str(v) for v in value]
        return [_plain(v) for v in value]
    return [str(value)]


def to_application_error(exc: Exception) -> errors.ApplicationError | None:
    if isinstance(exc, errors.ApplicationError):
        return exc
    if isinstance(exc, drf.ValidationError):
        return errors.ValidationError(details=_flatten_details(exc.detail))
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return errors.ValidationError(details={k: [str(m) for m in v.messages] for k, v in exc})
        return errors.ValidationError(details={"non_field_errors": [str(m) for m in exc.messages]})
    if isinstance(exc, drf.ParseError):
        return errors.MalformedRequest(str(exc.detail))
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return errors.Unauthenticated(str(exc.detail) if isinstance(exc, drf.AuthenticationFailed) else None)
    if isinstance(exc, (Http404, drf.NotFound)):
        return errors.NotFound()
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        return errors.PermissionDenied()
    if isinstance(exc, drf.MethodNotAllowed):
        return errors.MethodNotAllowed(str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return errors.UnsupportedMediaType(str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return errors.ApplicationError(str(exc.detail))
    if isinstance(exc, drf.Throttled):
        wait = math.ceil(exc.wait) if exc.wait is not None else None
        return errors.RateLimited(str(exc.detail), retry_after=wait)
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent)):
        return errors.PayloadTooLarge()
    if isinstance(exc, OperationalError) and is_lock_timeout(exc):
        return errors.DatabaseBusy()
    if isinstance(exc, drf.APIException):
        err = errors.ApplicationError(str(exc.detail))
        err.status = exc.status_code
        err.code = str(getattr(exc, "default_code", "error")).upper()
        return err
    return None


def exception_handler(exc: Exception, context: dict) -> Response:
    err = to_application_error(exc)
    if err is None:
        view = context.get("view")
        logger.exception("Unhandled error in %s", type(view).__name__ if view else "API view")
        return Response(envelope("INTERNAL_ERROR", "An unexpected error occurred; it has been logged."), status=500)
    headers = {}
    if isinstance(err, errors.RateLimited) and err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    if isinstance(err, errors.Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return Response(envelope(err.code, err.message, err.details), status=err.status, headers=headers)


def json_error(err: errors.ApplicationError) -> JsonResponse:
    """For code outside DRF's views (middleware, Django's handler404/500 under /api/)."""
    return JsonResponse(envelope(err.code, err.message, err.details), status=err.status)
