"""End-to-end fixtures: real Celery worker and beat subprocesses (`celery -A config ...`) against the test
database and a real Redis, sending over real SMTP to a sink in this process.

The subprocesses see pytest-django's test database because the tests are transactional (their writes
are committed) and DATABASE_URL names that database. Engine intervals and leases are shortened through
the environment so a crash is recovered in seconds, not minutes; the code paths are the production ones.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from common.smtp_sink import SinkHandler, SmtpSink

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
LOG_DIR = Path(os.environ.get("E2E_LOG_DIR", "/tmp/mailsched-e2e-logs"))

# Short enough that a killed worker's lease runs out within a test, longer than a test batch takes.
ENGINE_ENV = {
    "DELIVERY_DISPATCH_EVERY_SECONDS": "1",
    "DELIVERY_REAP_EVERY_SECONDS": "2",
    "DISPATCH_HORIZON_SECONDS": "10",
    "DELIVERY_BATCH_SIZE": "100",
    "DELIVERY_LEASE_SECONDS": "6",
    "CELERY_TASK_TIME_LIMIT": "5",
    "CELERY_TASK_SOFT_TIME_LIMIT": "4",
    "DELIVERY_REENQUEUE_AFTER_SECONDS": "6",
    "DELIVERY_LAUNCH_REENQUEUE_AFTER_SECONDS": "6",
    "DELIVERY_FANOUT_REENQUEUE_AFTER_SECONDS": "5",
    "DELIVERY_BULK_QUEUE_MAX_BATCHES": "10",
    "CONTACT_IMPORT_STALLED_SECONDS": "5",
}
# The imports worker keeps a time limit of the production kind: the short ones above exist to recover killed
# send batches quickly, and an import task works for min(CONTACT_IMPORT_TASK_SECONDS, soft limit / 2).
IMPORTS_ENV = {"CELERY_TASK_SOFT_TIME_LIMIT": "60", "CELERY_TASK_TIME_LIMIT": "70"}


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.2):
    """Poll until `condition()` is truthy: waiting for other processes, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlowSinkHandler(SinkHandler):
    """A mail server that takes `delay` seconds per message, so a test can act while a send is running. It
    notes the time (time.time()) each message arrived."""

    delay: float = 0.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrived_at: list[float] = []

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = await super().handle_DATA(server, session, envelope)
        self.arrived_at.append(time.time())
        return answer


@pytest.fixture
def sink():
    smtp = SmtpSink()
    smtp.handler = SlowSinkHandler()
    smtp.controller.handler = smtp.handler
    with smtp:
        yield smtp


def recipients_at(sink) -> list[str]:
    return [rcpt.lower() for message in list(sink.messages) for rcpt in message.rcpt_tos]


class Process:
    """One celery subprocess in its own process group (so SIGKILL takes its pool children too)."""

    def __init__(self, name: str, args: list[str], env: dict):
        self.name = name
        self.args = args
        self.env = env
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> "Process":
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = open(LOG_DIR / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child process
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            [CELERY, "-A", "config", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, no warm shutdown: what a crash or the OOM killer does."""
        if self.running:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if not self.running:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Engine:
    """The delivery engine's processes for one test: a default worker, a bulk worker and beat."""

    def __init__(self, *, redis_url: str, email_url: str):
        self.env = {
            **os.environ,
            **ENGINE_ENV,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "TEST_EMAIL_URL": email_url,
            "DB_CONN_MAX_AGE": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("EMAIL_BACKEND", None)
        tag = uuid.uuid4().hex[:6]
        common = [
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]
        self.tag = tag
        self.default = Process(
            "default", ["worker", "-Q", "default", "-n", f"default-{tag}@%h", *common], self.env
        )
        self.bulk = Process("bulk", ["worker", "-Q", "bulk", "-n", f"bulk-{tag}@%h", *common], self.env)
        # Started only by the tests that need them (start(imports=True, transactional=True)).
        self.imports = Process(
            "imports", ["worker", "-Q", "imports", "-n", f"imports-{tag}@%h", *common], {**self.env, **IMPORTS_ENV}
        )
        self.transactional = Process(
            "transactional", ["worker", "-Q", "tx_high,tx_low", "-n", f"tx-{tag}@%h", *common], self.env
        )
        self.beat = Process(
            "beat",
            [
                "beat",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
                "--loglevel",
                "INFO",
                "--pidfile=",
            ],
            self.env,
        )

    def start(
        self, *, beat: bool = True, bulk: bool = True, imports: bool = False, transactional: bool = False
    ) -> "Engine":
        self.default.start()
        for process, wanted in ((self.bulk, bulk), (self.imports, imports), (self.transactional, transactional)):
            if wanted:
                process.start()
        if beat:
            self.beat.start()
        return self

    def stop(self) -> None:
        for process in (self.beat, self.transactional, self.imports, self.bulk, self.default):
            process.stop()

    def wait_until_ready(self, *names: str, timeout: float = 60) -> None:
        """Until each named worker ("default", "imports", ...) answers a ping: a test whose clock starts
        before the workers are up would measure their start-up."""
        from config.celery import app

        prefix = {"transactional": "tx"}
        for name in names:
            node = f"{prefix.get(name, name)}-{self.tag}@{socket.gethostname()}"
            wait_for(
                lambda n=node: app.control.ping(destination=[n], timeout=0.5),
                timeout=timeout,
                what=f"the {name} worker to start",
                every=0.5,
            )


def register_fast_periodic_tasks(settings) -> None:
    """The system's beat entries (as migrate registers them), at the shortened test intervals. Needed per
    test: a transactional test's database is emptied after each test."""
    from common.periodic import register_system_periodic_tasks

    tasks = {name: dict(spec) for name, spec in settings.SYSTEM_PERIODIC_TASKS.items()}
    tasks["delivery: dispatch due"]["every_seconds"] = int(ENGINE_ENV["DELIVERY_DISPATCH_EVERY_SECONDS"])
    tasks["delivery: reap leases"]["every_seconds"] = int(ENGINE_ENV["DELIVERY_REAP_EVERY_SECONDS"])
    tasks["audience: reap imports"]["every_seconds"] = 1
    settings.SYSTEM_PERIODIC_TASKS = tasks
    register_system_periodic_tasks()


@pytest.fixture
def engine_factory(transactional_db, sink, settings):
    """Builds (not starts) an Engine; every engine built is stopped at the end of the test, before the
    test database is emptied."""
    register_fast_periodic_tasks(settings)
    built: list[Engine] = []

    def build(*, redis_url: str | None = None) -> Engine:
        engine = Engine(
            redis_url=redis_url or settings.REDIS_URL, email_url=f"smtp://{sink.host}:{sink.port}"
        )
        built.append(engine)
        return engine

    yield build
    for engine in built:
        engine.stop()


@pytest.fixture
def engine(engine_factory):
    return engine_factory().start()


class RedisServer:
    """A private redis-server on a free port, without persistence: a restart loses everything in it."""

    def __init__(self):
        self.port = free_port()
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.popen = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_for(lambda: _pings(client), timeout=10, what="redis-server to start")
        return self

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


@pytest.fixture
def private_redis():
    server = RedisServer().start()
    yield server
    server.stop()


# --- campaigns ------------------------------------------------------------------------------------------


class Mailing:
    """A ready campaign with its own audience: `contacts` get mail, `excluded` must not."""

    def __init__(self, *, workspace, campaign, contacts, excluded):
        self.workspace = workspace
        self.campaign = campaign
        self.contacts = contacts
        self.excluded = excluded

    @property
    def emails(self) -> list[str]:
        return sorted(c.email for c in self.contacts)

    def schedule_in(self, seconds: float):
        """Schedule the campaign `seconds` from now through the service the API uses; returns the instant."""
        from datetime import timedelta

        from django.utils import timezone

        from campaigns import services

        at = timezone.now() + timedelta(seconds=seconds)
        request = services.schedule_parse(schedule_type="scheduled", scheduled_at=at.isoformat())
        services.campaign_schedule(workspace=self.workspace, campaign_id=self.campaign.id, request=request)
        return at

    def refresh(self):
        self.campaign.refresh_from_db()
        return self.campaign


@pytest.fixture
def make_mailing(transactional_db):
    from audience.models import Contact, Suppression
    from campaigns.models import Campaign
    from tests.factories import LabelFactory, SendingDomainFactory, WorkspaceFactory

    workspace = WorkspaceFactory()
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)

    def make(count: int, *, suppressed: int = 0, unsubscribed: int = 0, name: str = "list") -> Mailing:
        label = LabelFactory(workspace=workspace, name=name)

        def contacts(n: int, kind: str, status=Contact.Status.SUBSCRIBED) -> list:
            made = Contact.objects.bulk_create(
                Contact(
                    workspace=workspace,
                    email=f"{name}-{kind}{i}@example.org",
                    first_name=f"Ana{i}",
                    last_name="Lopez",
                    status=status,
                )
                for i in range(n)
            )
            Contact.labels.through.objects.bulk_create(
                Contact.labels.through(contact_id=c.id, label_id=label.id) for c in made
            )
            return made

        wanted = contacts(count, "r")
        blocked = contacts(suppressed, "s")
        Suppression.objects.bulk_create(Suppression(workspace=workspace, email=c.email) for c in blocked)
        blocked += contacts(unsubscribed, "u", Contact.Status.UNSUBSCRIBED)
        campaign = Campaign.objects.create(
            workspace=workspace,
            name=f"E2E {name}",
            subject="Hi {{ first_name }}",
            from_name="News",
            from_email="news@mail.example.com",
            html="<p>Hello {{ first_name }} {{ last_name }}</p>",
            text="Hello {{ first_name }} {{ last_name }}",
            tracking={"opens": False, "clicks": False},
            audience={
                "include_labels": [str(label.id)],
                "exclude_labels": [],
                "include_segments": [],
                "exclude_segments": [],
            },
        )
        return Mailing(workspace=workspace, campaign=campaign, contacts=wanted, excluded=blocked)

    return make
