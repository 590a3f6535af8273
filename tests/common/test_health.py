import redis
from django.conf import settings

from common.tasks import HEARTBEAT_KEY, heartbeat


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_redis(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_reports_the_workers_heartbeat(client, db):
    redis.Redis.from_url(settings.REDIS_URL).delete(HEARTBEAT_KEY)
    assert client.get("/readyz").json()["workers_last_heartbeat_seconds_ago"] is None
    heartbeat()
    age = client.get("/readyz").json()["workers_last_heartbeat_seconds_ago"]
    assert age is not None and age >= 0


def test_readyz_is_503_when_redis_is_unreachable(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error:")
