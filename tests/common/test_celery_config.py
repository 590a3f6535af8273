"""The Celery settings the engine's guarantees rest on, read back from the loaded app."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from audience import tasks as audience_tasks
from config.celery import app

ROOT = Path(__file__).resolve().parents[2]


def test_only_json_is_accepted_and_produced():
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert list(app.conf.accept_content) == ["json"]


def test_late_acks_and_reject_on_worker_lost_are_on():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_workers_send_task_events_and_publishers_no_task_sent_event_by_default():
    # docs/decisions/111: Flower's worker events stay; the web request's extra task-sent publish is off.
    assert app.conf.worker_send_task_events is True
    assert app.conf.task_send_sent_event is False


def test_celery_sent_events_turns_the_task_sent_event_on():
    code = (
        "import django; django.setup(); from config.celery import app; "
        "print(app.conf.task_send_sent_event, app.conf.worker_send_task_events)"
    )
    env = {**os.environ, "CELERY_SENT_EVENTS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True"], result.stderr


def test_the_five_queues_are_declared():
    assert {q.name for q in app.conf.task_queues} == {"tx_high", "tx_low", "bulk", "default", "imports"}
    assert app.conf.task_default_queue == "default"


def test_the_import_task_is_bound_to_the_imports_queue():
    # So that even a plain .delay() keeps an import off the clock's queue (docs/decisions/019).
    assert audience_tasks.contact_import_process.queue == "imports"
    assert audience_tasks.reap_imports.queue == "default"


@pytest.mark.parametrize("procfile", ["Procfile", "Procfile.dev"])
def test_imports_have_a_worker_of_their_own_in_the_procfile(procfile):
    queues_of = {}
    for line in (ROOT / procfile).read_text().splitlines():
        name, _, command = line.partition(":")
        words = command.split()
        if "worker" in words and "-Q" in words:
            queues_of[name] = set(words[words.index("-Q") + 1].split(","))
    assert queues_of["imports"] == {"imports"}
    assert [name for name, queues in queues_of.items() if "default" in queues] == ["worker"]
    assert "imports" not in queues_of["worker"]


def test_time_limits_are_set():
    assert app.conf.task_time_limit > app.conf.task_soft_time_limit > 0


def test_visibility_timeout_is_longer_than_any_eta_the_engine_uses():
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > settings.DISPATCH_HORIZON_SECONDS
    assert visibility >= app.conf.task_time_limit


def test_broker_is_redis_from_settings():
    assert app.conf.broker_url == settings.REDIS_URL
    assert app.conf.broker_url.startswith("redis://")


def test_beat_uses_the_database_scheduler():
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_results_are_ignored():
    assert app.conf.task_ignore_result is True


def test_system_periodic_tasks_exist_after_migrate(db):
    for name, spec in settings.SYSTEM_PERIODIC_TASKS.items():
        task = PeriodicTask.objects.get(name=name)
        assert task.task == spec["task"]
        assert task.interval.every == spec["every_seconds"]
        assert task.enabled


def test_registering_periodic_tasks_twice_keeps_one_of_each(db):
    from common.periodic import register_system_periodic_tasks

    register_system_periodic_tasks()
    register_system_periodic_tasks()
    assert PeriodicTask.objects.filter(name__in=settings.SYSTEM_PERIODIC_TASKS).count() == len(
        settings.SYSTEM_PERIODIC_TASKS
    )
