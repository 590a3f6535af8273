"""Ops endpoints: /healthz says the process is up, /readyz checks database and Redis, /metrics for Prometheus."""

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
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


@require_GET
def metrics(request):
    """Prometheus text format, summed over every process of this machine (common.metrics). With
    METRICS_TOKEN set, the scraper must send `Authorization: Bearer <token>`."""
    from common.metrics import render

    token = settings.METRICS_TOKEN
    if token and not constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("A metrics token is required.\n", status=401, content_type="text/plain")
    body, content_type = render()
    return HttpResponse(body, content_type=content_type)
