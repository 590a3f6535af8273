"""The README's run command, as a newcomer runs it: `scripts/run` in a fresh copy of the project, with
nothing but a free port for web, SMTP sink and Redis. It installs the locked dependencies into the copy's
.venv, starts its own Redis, migrates the SQLite file, seeds the demo and starts web, workers, beat and the
sink with honcho. The test waits for /readyz, then for the demo's first campaign (due a minute after seeding)
in data/outbox; its links carry the port the server was given; /metrics, summed across gunicorn and the
prefork workers, counts what the bulk worker sent and its lag; Ctrl-C stops every process, Redis included."""

import email
import email.policy
import json
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import LOG_DIR, ROOT, free_port, wait_for
from tests.metrics_text import samples

pytestmark = pytest.mark.slow

IGNORED = shutil.ignore_patterns(".venv", ".git", "data", "artifacts", "__pycache__", "results", "*.pyc")


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except OSError:
        return 0, b""


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for line in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = line.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                child = int(line.parent.name)
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _welcome_mail(outbox: Path):
    for path in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if str(message["Subject"]).startswith("Welcome"):
            return message
    return None


def test_the_readme_run_command_sends_the_demo_campaign_and_ctrl_c_stops_everything(tmp_path):
    copy = tmp_path / "mailsched"
    shutil.copytree(ROOT, copy, ignore=IGNORED, symlinks=True)
    web, mail, redis_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "PROMETHEUS_"))}
    env.pop("EMAIL_URL", None)
    env.pop("TEST_EMAIL_URL", None)
    env.pop("VIRTUAL_ENV", None)
    # A new user's shell: scripts/test puts this checkout's .venv/bin first on PATH, whose python3 has no pip
    # or uv, and the copy must find the machine's Python as the README's command does.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.endswith(".venv/bin"))
    env.update(
        PORT=str(web), MAIL_PORT=str(mail), REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", PYTHONUNBUFFERED="1"
    )
    env.pop("CELERY_BROKER_URL", None)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / "run-command.log"
    base = f"http://127.0.0.1:{web}"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(
            ["scripts/run"], cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(
            lambda: run.poll() is None and _get(f"{base}/readyz")[0] == 200,
            timeout=300,
            every=1,
            what=f"/readyz of scripts/run (log: {log_path})",
        )
        assert run.poll() is None, log_path.read_text()[-3000:]
        assert json.loads(_get(f"{base}/readyz")[1])["status"] == "ok"
        printed = log_path.read_text()
        assert f"{base}/admin/" in printed and "admin / admin" in printed
        key = (copy / "data" / "demo-api-key").read_text().strip()
        assert key.startswith("msk_") and key in printed
        assert str(copy / "data" / "outbox") in printed

        message = wait_for(
            lambda: _welcome_mail(copy / "data" / "outbox"),
            timeout=240,
            every=1,
            what=f"the demo's first campaign in data/outbox (log: {log_path})",
        )
        body = message.get_body(preferencelist=("html",)).get_content()
        assert f"{base}/t/" in body  # tracking links on the port the server was given, not 8000
        assert "127.0.0.1:8000" not in body and "127.0.0.1:8000" not in str(message["List-Unsubscribe"])

        def sent_by_workers():
            found = samples(_get(f"{base}/metrics")[1].decode())
            sent = found.get(("mailsched_messages_total", ("outcome", "sent"), ("queue", "bulk")), 0)
            lag = found.get(("mailsched_schedule_lag_seconds_count", ("queue", "bulk")), 0)
            return (sent, lag) if sent >= 1 and lag >= 1 else None

        sent, lag = wait_for(sent_by_workers, timeout=30, what="the bulk worker's sent counter in /metrics")
        assert sent == lag
        processes = _descendants(run.pid)
        assert len(processes) >= 8  # honcho, gunicorn and its workers, five celery workers, beat, the sink
    finally:
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in the terminal does: the whole foreground group
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            raise
    wait_for(lambda: not any(_alive(pid) for pid in processes), timeout=30, what="every process to stop")
    wait_for(lambda: not _pings(redis_port), timeout=15, what="the Redis that scripts/run started to stop")


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
    except redis.ConnectionError:
        return False
