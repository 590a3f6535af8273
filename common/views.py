"""Ops endpoints: /healthz says the process is up, /readyz checks database and Redis."""

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from common.tasks import heartbeat_age_seconds


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {type(exc).__name__}: {exc}"
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}: {exc}"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    if ready:
        # Informational, not a readiness gate: web can serve while workers restart.
        body["workers_last_heartbeat_seconds_ago"] = heartbeat_age_seconds(client)
    return JsonResponse(body, status=200 if ready else 503)


def api_not_found(request, exception=None):
    from common import errors
    from common.exceptions import json_error

    return json_error(errors.NotFound("No such API endpoint."))
