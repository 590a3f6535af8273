"""What every benchmark shares: Django setup on the bench database, the SMTP sink (Postfix's smtp-sink),
real Celery worker subprocesses, audiences made in SQL, percentiles, the printed table and the JSON file.

Each benchmark is `bench/run NAME` (see bench/README.md); `bench/run` installs what is needed, starts
PostgreSQL and Redis when they are down, and migrates the bench database before calling NAME's main().
"""

import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
CELERY = str(VENV_BIN / "celery")
SMTP_SINK = os.environ.get("SMTP_SINK", "/usr/sbin/smtp-sink")
LOGS = RESULTS / "logs"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()


# --- small helpers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def summarize(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        rev = ""
    mem_gb = None
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem_gb = round(kb / 1024 / 1024, 1)
    except (OSError, AttributeError):
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "git": rev,
        "load_avg_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
    }


def print_table(title: str, headers: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    text = f"\n{title}\n" + "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def save_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": " ".join(["bench/run", name, *sys.argv[1:]]),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"saved {path.relative_to(ROOT)}", flush=True)
    return path


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the SMTP sink ----------------------------------------------------------------------------------------


class Sink:
    """Postfix's smtp-sink on a free port: takes SMTP and throws the mail away, in C, event-driven, so it
    is faster than any Python sender here (bench/send.py measures that). `-c` makes it print running
    counters ("sess=N quit=N mesg=N\\r"); a thread reads them and notes when each count was reached."""

    COUNTER = re.compile(rb"mesg=(\d+)")

    def __init__(self):
        if not Path(SMTP_SINK).exists():
            raise SystemExit(f"{SMTP_SINK} is missing: bench/run installs it (apt-get install postfix)")
        self.port = free_port()
        self.count = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.popen: subprocess.Popen | None = None
        self._cond = threading.Condition()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> "Sink":
        args = [SMTP_SINK, "-c", "-m", "1024"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += [f"127.0.0.1:{self.port}", "1024"]
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(self._answers, timeout=10, what="smtp-sink to listen")
        return self

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = self.popen.stdout.read(65536)  # unbuffered pipe: returns what is there
            if not chunk:
                return
            now = time.monotonic()
            buffer += chunk
            *complete, buffer = re.split(rb"[\r\n]", buffer)
            for line in complete:
                match = self.COUNTER.search(line)
                if not match:
                    continue
                count = int(match.group(1))
                with self._cond:
                    if count > self.count:
                        if self.count == 0:
                            self.first_at = now
                        self.count = count
                        self.last_at = now
                        self._cond.notify_all()

    def wait_count(self, target: int, *, timeout: float) -> float:
        """Block until `target` messages arrived; returns the monotonic time the target was reached."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.count < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"sink got {self.count} of {target} messages in {timeout:.0f}s")
                self._cond.wait(min(left, 1.0))
            return self.last_at

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()

    def __enter__(self) -> "Sink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- Celery workers and other subprocesses ----------------------------------------------------------------


def product_env(*, email_url: str, **extra: str) -> dict:
    """The environment a product process of the benchmark runs with: the bench database, Redis and sink."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "CELERY_BROKER_URL": os.environ["REDIS_URL"],
        "EMAIL_URL": email_url,
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }
    env.pop("EMAIL_BACKEND", None)
    env.update(extra)
    return env


class Proc:
    """A subprocess in its own process group, logging to bench/results/logs/NAME.log."""

    def __init__(self, name: str, args: list[str], env: dict):
        self.name = name
        self.args = args
        self.env = env
        self.popen: subprocess.Popen | None = None
        self.log_offset = 0

    def start(self) -> "Proc":
        LOGS.mkdir(parents=True, exist_ok=True)
        path = LOGS / f"{self.name}.log"
        self.log_offset = path.stat().st_size if path.exists() else 0
        log_file = open(path, "ab")  # noqa: SIM115 - owned by the child
        log_file.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.args)}\n".encode())
        log_file.flush()
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def children(self) -> list[int]:
        return descendants(self.popen.pid) if self.popen else []

    def stop(self, *, kill: bool = False) -> None:
        if not self.running:
            return
        if kill:
            os.killpg(self.popen.pid, signal.SIGKILL)
        else:
            # The main process only: Celery's warm shutdown lets the pool finish its current task (a TERM to
            # the whole group would kill the pool processes mid-batch).
            os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def descendants(pid: int) -> list[int]:
    """Child pids (recursively) from /proc, without psutil."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def memory_kb(pid: int) -> dict:
    """VmRSS (now) and VmHWM (peak resident set) of a process, in kB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def celery_worker(name: str, *, queues: str, concurrency: int, env: dict, extra: list[str] | None = None) -> Proc:
    tag = uuid.uuid4().hex[:6]
    args = [
        CELERY,
        "-A",
        "config",
        "worker",
        "-Q",
        queues,
        "-n",
        f"{name}-{tag}@%h",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
        *(extra or []),
    ]
    return Proc(name, args, env)


def wait_worker_ready(proc: Proc, *, timeout: float = 60) -> None:
    """A worker is ready when its log says so (celery prints 'ready.' after connecting to the broker)."""
    path = LOGS / f"{proc.name}.log"
    start = proc.log_offset

    def ready() -> bool:
        if not proc.running:
            raise RuntimeError(f"{proc.name} exited; see {path}")
        with open(path, "rb") as f:
            f.seek(0)
            text = f.read()
        return b" ready." in text[start:] or b"ready.\n" in text[start:]

    wait_for(ready, timeout=timeout, what=f"{proc.name} to be ready", every=0.2)


def celery_beat(env: dict) -> Proc:
    return Proc(
        "beat",
        [
            CELERY,
            "-A",
            "config",
            "beat",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--loglevel",
            "WARNING",
            "--pidfile=",
        ],
        env,
    )


def flush_redis() -> None:
    """Empty the bench's own Redis database (REDIS_URL names it) so no task of an earlier run is left."""
    import redis

    url = os.environ["REDIS_URL"]
    # redis-py reads a path that is not a number (`/BENCH4`) as no database, i.e. database 0: refuse it
    # rather than empty a database that is not the bench's.
    if not re.fullmatch(r"/\d+", urllib.parse.urlsplit(url).path or ""):
        raise SystemExit(f"REDIS_URL {url!r} names no database number (redis://host:port/N); not flushing it")
    redis.Redis.from_url(url).flushdb()


# --- data ---------------------------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Jakarta",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Europe/London",
    "America/Sao_Paulo",
    "Africa/Lagos",
]


def audience(name: str, count: int):
    """A workspace named `bench-NAME` with a verified sending domain and `count` subscribed contacts, all
    labelled NAME, written in SQL (generate_series) so a million take seconds. Kept between runs: made
    again only when the count differs. Returns (workspace, label)."""
    from django.db import connection, transaction

    from accounts.models import SendingDomain, Workspace
    from audience.models import Contact, Label

    workspace, _ = Workspace.objects.get_or_create(name=f"bench-{name}", defaults={"timezone": "UTC"})
    SendingDomain.objects.get_or_create(
        workspace=workspace,
        domain="mail.example.com",
        defaults={"verified": True, "verification_token": uuid.uuid4().hex},
    )
    SendingDomain.objects.filter(workspace=workspace).update(verified=True)
    label, _ = Label.objects.get_or_create(workspace=workspace, name=name)
    have = Contact.objects.filter(workspace=workspace).count()
    if have == count:
        return workspace, label
    log(f"making {count:,} contacts for audience {name} (had {have:,})")
    zones = "ARRAY[" + ",".join(f"'{z}'" for z in ZONES) + "]"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM audience_contact_labels WHERE contact_id IN "
            "(SELECT id FROM audience_contact WHERE workspace_id = %s)",
            [workspace.id],
        )
        cursor.execute("DELETE FROM delivery_delivery WHERE workspace_id = %s", [workspace.id])
        cursor.execute("DELETE FROM audience_contact WHERE workspace_id = %s", [workspace.id])
        cursor.execute(
            f"""INSERT INTO audience_contact (id, workspace_id, email, first_name, last_name, timezone, attributes,
                                              status, created_at, updated_at)
                SELECT gen_random_uuid(), %s, 'r' || i || '@example' || (i %% 50) || '.org', 'Ana' || i, 'Lopez',
                       ({zones})[1 + i %% {len(ZONES)}], '{{"plan": "pro"}}'::jsonb, 'subscribed', now(), now()
                FROM generate_series(1, %s) AS i""",
            [workspace.id, count],
        )
        cursor.execute(
            "INSERT INTO audience_contact_labels (contact_id, label_id) "
            "SELECT id, %s FROM audience_contact WHERE workspace_id = %s",
            [label.id, workspace.id],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audience_contact; ANALYZE audience_contact_labels")
    return workspace, label


SUBJECT = "{{ first_name }}, your May update"
TEXT = (
    "Hello {{ first_name }} {{ last_name }},\n\n"
    + "Here is what changed this month in your account and in the product. " * 12
    + "\n\nUnsubscribe: {{ unsubscribe_url }}\n"
)
HTML = (
    "<html><body><h1>Hello {{ first_name }}</h1>"
    + "<p>Here is what changed this month in your account and in the product. "
    'Read the <a href="https://example.com/changelog">changelog</a>.</p>'
    * 12
    + '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


def campaign(workspace, label, *, name: str, **fields):
    """A ready campaign (subject, verified sender, html+text personalised, the label as audience)."""
    from campaigns.models import Campaign

    values = {
        "subject": SUBJECT,
        "from_name": "News",
        "from_email": "news@mail.example.com",
        "html": HTML,
        "text": TEXT,
        "tracking": {"opens": False, "clicks": False},
        "audience": {
            "include_labels": [str(label.id)],
            "exclude_labels": [],
            "include_segments": [],
            "exclude_segments": [],
        },
    }
    values.update(fields)
    return Campaign.objects.create(workspace=workspace, name=name, **values)


def clear_campaigns() -> None:
    """Drop what earlier benchmark runs left: campaigns, runs, deliveries (the bench database only)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE delivery_event, delivery_delivery, campaigns_campaignrun, "
            "campaigns_campaign_labels, campaigns_campaign CASCADE"
        )


def engine(env: dict, *, shared_pool: bool = False, bulk_concurrency: int = 2) -> list[Proc]:
    """The product's processes as the Procfile runs them: beat, the tx_high ("priority") worker, the
    tx_low+default worker and the bulk worker. `shared_pool`: no dedicated tx_high worker; the bulk worker
    takes tx_high too (what a deployment with one worker pool for everything gets)."""
    tx = os.environ.get("PRIORITY_CONCURRENCY", "2")
    default = os.environ.get("WORKER_CONCURRENCY", "2")
    procs = [
        celery_beat(env),
        celery_worker("default", queues="tx_low,default", concurrency=int(default), env=env),
    ]
    if shared_pool:
        procs.append(celery_worker("bulk", queues="bulk,tx_high", concurrency=bulk_concurrency, env=env))
    else:
        procs.append(celery_worker("priority", queues="tx_high", concurrency=int(tx), env=env))
        procs.append(celery_worker("bulk", queues="bulk", concurrency=bulk_concurrency, env=env))
    return procs


def start_all(procs: list[Proc]) -> None:
    for proc in procs:
        proc.start()
    for proc in procs:
        if not proc.name.endswith("beat"):
            wait_worker_ready(proc)


def stop_all(procs: list[Proc]) -> None:
    for proc in procs:
        proc.stop()
