"""Settings shared by every environment. Everything that differs between machines comes from the environment."""

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from common.ratelimit import parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / "data"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


SECRET_KEY = os.environ.get("SECRET_KEY", "dev-insecure-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "config.apps.MailschedAdminConfig",  # django.contrib.admin with the operators' home page
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "common",
    "accounts",
    "audience",
    "campaigns",
    "transactional",
    "delivery",
    "webhooks",
    "reports",
    "anymail",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "common.middleware.ApiBodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default shared by web, workers and beat (docs/decisions/070). WAL: readers never wait for
    # the writer. IMMEDIATE: a transaction takes the write lock at BEGIN, so two that read and then write
    # queue behind each other under the busy timeout instead of one failing at once with "database is
    # locked" (SQLite cannot upgrade a read lock while another writer waits). The timeout is how long a
    # writer waits; state changes of a campaign wait less (CAMPAIGN_LOCK_TIMEOUT_MS) and then answer 409.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": float(os.environ.get("SQLITE_BUSY_TIMEOUT_SECONDS", "20")),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"

# --- Redis, Celery -----------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mailsched",
    }
}

# The engine never enqueues a task with an ETA further than this ahead (docs/architecture.md): the dispatcher
# claims due rows within a short horizon. The broker's visibility timeout must be longer than any ETA,
# or Redis hands a waiting ETA task to a second worker (Celery docs, "Redis caveats: visibility timeout").
DISPATCH_HORIZON_SECONDS = int(os.environ.get("DISPATCH_HORIZON_SECONDS", "30"))
CELERY_VISIBILITY_TIMEOUT_SECONDS = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT_SECONDS", "3600"))

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS,
    # Priority steps let a Redis queue order tasks; the queues themselves carry the isolation.
    "queue_order_strategy": "priority",
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", "600"))
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "540"))
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES_NAMES = ("tx_high", "tx_low", "bulk", "default", "imports")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Task events, so Flower or `celery events` can show what each worker runs (docs/operations.md); off with
# CELERY_EVENTS=0 if the broker traffic matters more. The `task-sent` event is the publisher's (a web
# request that enqueues sends it), a second Redis publish on every transactional request for a state
# ("sent, not yet received") Flower does without: off unless CELERY_SENT_EVENTS=1 (docs/decisions/111).
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_EVENTS", True)
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_SENT_EVENTS", False)
CELERY_TASK_ALWAYS_EAGER = False

# The system's periodic tasks; common.apps registers them in django-celery-beat after migrate.
SYSTEM_PERIODIC_TASKS: dict[str, dict] = {
    "system: heartbeat": {
        "task": "common.tasks.heartbeat",
        "every_seconds": 10,
        "queue": "default",
        "description": "Proves beat and a default worker are alive (shown by /readyz).",
    },
    "campaigns: launch due": {
        "task": "campaigns.tasks.dispatch_due",
        "every_seconds": int(os.environ.get("DELIVERY_DISPATCH_EVERY_SECONDS", "2")),
        "queue": "default",
        "description": "Launches due campaigns, re-enqueues lost fan-outs, closes runs whose deliveries all ended.",
    },
    "delivery: dispatch due": {
        "task": "delivery.tasks.dispatch_due",
        "every_seconds": int(os.environ.get("DELIVERY_DISPATCH_EVERY_SECONDS", "2")),
        "queue": "default",
        "description": "Enqueues campaign deliveries due within the horizon (docs/architecture.md).",
    },
    "delivery: reap leases": {
        "task": "delivery.tasks.reap_leases",
        "every_seconds": int(os.environ.get("DELIVERY_REAP_EVERY_SECONDS", "15")),
        "queue": "default",
        "description": "Returns deliveries of dead workers to the queue.",
    },
    "accounts: expire idempotency keys": {
        "task": "accounts.tasks.idempotency_records_expire",
        "every_seconds": int(os.environ.get("IDEMPOTENCY_EXPIRE_EVERY_SECONDS", "600")),
        "queue": "default",
        "description": "Deletes Idempotency-Key records older than 24 hours (docs/decisions/023).",
    },
    "audience: reap imports": {
        "task": "audience.tasks.reap_imports",
        "every_seconds": int(os.environ.get("CONTACT_IMPORT_REAP_EVERY_SECONDS", "30")),
        "queue": "default",
        "description": "Resumes CSV imports whose worker died from their checkpoint; fails them after repeated stalls.",
    },
    "webhooks: dispatch due": {
        "task": "webhooks.tasks.dispatch_due",
        "every_seconds": int(os.environ.get("WEBHOOK_DISPATCH_EVERY_SECONDS", "1")),
        "queue": "default",
        "description": "Turns new events into webhook messages; enqueues one delivery task per endpoint.",
    },
    "reports: aggregate events": {
        "task": "reports.tasks.aggregate",
        "every_seconds": int(os.environ.get("REPORTS_AGGREGATE_EVERY_SECONDS", "5")),
        "queue": "default",
        "description": "Counts new events into the report rollups; sent campaigns become reported.",
    },
    "reports: expire exports": {
        "task": "reports.tasks.expire_exports",
        "every_seconds": int(os.environ.get("REPORTS_EXPORT_EXPIRE_EVERY_SECONDS", "600")),
        "queue": "default",
        "description": "Deletes report exports (and their files) older than REPORTS_EXPORT_TTL_HOURS.",
    },
    "transactional: dispatch due": {
        "task": "transactional.tasks.dispatch_due",
        "every_seconds": int(os.environ.get("TRANSACTIONAL_DISPATCH_EVERY_SECONDS", "1")),
        "queue": "default",
        "description": "Enqueues due scheduled and retrying transactional mail; flags hand-offs of dead workers.",
    },
}

# --- Reports (docs/decisions/050, 051) -----------------------------------------------------------------
# Events counted per transaction of the aggregator, and how long one tick may go on before leaving the rest
# to the next (so a backlog never holds a `default` worker for long).
REPORTS_AGGREGATE_BATCH_SIZE = int(os.environ.get("REPORTS_AGGREGATE_BATCH_SIZE", "20000"))
REPORTS_AGGREGATE_TIME_BUDGET_SECONDS = float(os.environ.get("REPORTS_AGGREGATE_TIME_BUDGET_SECONDS", "20"))
# An event id the aggregator passed before it was committed is looked for until no transaction that was
# running then is still running; only if that cannot be seen (pg_stat_activity hides other roles' sessions)
# does it give up after this long.
REPORTS_PENDING_MAX_AGE_SECONDS = int(os.environ.get("REPORTS_PENDING_MAX_AGE_SECONDS", "900"))
REPORTS_EXPORT_TTL_HOURS = int(os.environ.get("REPORTS_EXPORT_TTL_HOURS", "168"))
REPORTS_EXPORT_CHUNK_SIZE = int(os.environ.get("REPORTS_EXPORT_CHUNK_SIZE", "2000"))

# --- Delivery engine: the dispatcher and its crash safety (docs/decisions/011) -----------------------
# Deliveries per send_batch task, and how far apart the send times in one batch may be (its ETA is the
# latest of them, so nobody gets mail early).
DELIVERY_BATCH_SIZE = int(os.environ.get("DELIVERY_BATCH_SIZE", "500"))
DELIVERY_BATCH_SPREAD_SECONDS = int(os.environ.get("DELIVERY_BATCH_SPREAD_SECONDS", "5"))
# At most this many deliveries are enqueued per tick, and fewer while the bulk queue already holds
# DELIVERY_BULK_QUEUE_MAX_BATCHES waiting tasks (backpressure: the schedule stays in the database).
DELIVERY_DISPATCH_MAX_PER_TICK = int(os.environ.get("DELIVERY_DISPATCH_MAX_PER_TICK", "20000"))
DELIVERY_BULK_QUEUE_MAX_BATCHES = int(os.environ.get("DELIVERY_BULK_QUEUE_MAX_BATCHES", "40"))
# A delivery, launch or fan-out enqueued this long ago and still not picked up is enqueued again (its
# task was lost with Redis). Duplicates are harmless: every task re-checks its rows' state.
DELIVERY_REENQUEUE_AFTER_SECONDS = int(os.environ.get("DELIVERY_REENQUEUE_AFTER_SECONDS", "120"))
DELIVERY_LAUNCH_REENQUEUE_AFTER_SECONDS = int(os.environ.get("DELIVERY_LAUNCH_REENQUEUE_AFTER_SECONDS", "120"))
DELIVERY_FANOUT_REENQUEUE_AFTER_SECONDS = int(os.environ.get("DELIVERY_FANOUT_REENQUEUE_AFTER_SECONDS", "60"))
# Contacts read and Delivery rows written per round trip of the fan-out.
DELIVERY_FANOUT_CHUNK_SIZE = int(os.environ.get("DELIVERY_FANOUT_CHUNK_SIZE", "5000"))
# A claim's lease (delivery.services): a live batch renews it once half is gone, so it need not outlast the
# task; it is how long a killed batch's untouched rows wait before they are sent (docs/decisions/100).
# Keep it above twice EMAIL_TIMEOUT: one hand-off may take that long between two renewals.
DELIVERY_LEASE_SECONDS = int(os.environ.get("DELIVERY_LEASE_SECONDS", "60"))
# What the reaper does with the message a dead worker had in flight: "retry" sends it again (the
# recipient may get it twice; the row is flagged possible_duplicate) or "uncertain" ends it unsent-or-not,
# flagged, for a person to judge. Marketing mail defaults to retry: a rare duplicate beats a silent loss.
DELIVERY_LEASE_EXPIRED_POLICY = os.environ.get("DELIVERY_LEASE_EXPIRED_POLICY", "retry")

# --- Delivery engine: the send path (delivery.services, docs/decisions/010) ---------------------------
DELIVERY_CLAIM_TOLERANCE_SECONDS = int(os.environ.get("DELIVERY_CLAIM_TOLERANCE_SECONDS", "2"))
# Per-message marks wait for the WAL flush only when this is on (docs/decisions/010): off doubles the send
# rate; a killed worker is safe either way, a PostgreSQL crash may then resend the last ~0.6 s of messages.
DELIVERY_DURABLE_MARKS = env_bool("DELIVERY_DURABLE_MARKS", False)
# Deliveries marked `sending` per statement (with the previous chunk's outcomes and events); between two
# such statements only the batch's progress row moves, once per message (docs/decisions/100).
DELIVERY_MARK_EVERY = int(os.environ.get("DELIVERY_MARK_EVERY", "100"))
# SMTP 4xx: retry after base, 2x base, ... (capped); after DELIVERY_MAX_ATTEMPTS the delivery is failed.
DELIVERY_MAX_ATTEMPTS = int(os.environ.get("DELIVERY_MAX_ATTEMPTS", "5"))
DELIVERY_RETRY_BASE_SECONDS = int(os.environ.get("DELIVERY_RETRY_BASE_SECONDS", "60"))
DELIVERY_RETRY_MAX_SECONDS = int(os.environ.get("DELIVERY_RETRY_MAX_SECONDS", "3600"))
DELIVERY_CONNECT_RETRY_SECONDS = int(os.environ.get("DELIVERY_CONNECT_RETRY_SECONDS", "60"))
# Throttling (a Redis token bucket): messages per second per workspace, and per recipient domain as JSON,
# e.g. DELIVERY_RATE_PER_DOMAIN='{"gmail.com": 50, "default": 200}'. Unset means unlimited.
DELIVERY_RATE_PER_WORKSPACE = (
    float(os.environ["DELIVERY_RATE_PER_WORKSPACE"]) if os.environ.get("DELIVERY_RATE_PER_WORKSPACE") else None
)
DELIVERY_RATE_PER_DOMAIN = json.loads(os.environ.get("DELIVERY_RATE_PER_DOMAIN") or "{}")
DELIVERY_THROTTLE_BURST_SECONDS = float(os.environ.get("DELIVERY_THROTTLE_BURST_SECONDS", "1.0"))
DELIVERY_THROTTLE_MAX_WAIT_SECONDS = float(os.environ.get("DELIVERY_THROTTLE_MAX_WAIT_SECONDS", "2.0"))
# The values above are the defaults under the throttles kept as data (delivery.models.Throttle, the API's
# /throttles, docs/decisions/062). A send batch re-reads those rows this often:
DELIVERY_THROTTLE_REFRESH_SECONDS = float(os.environ.get("DELIVERY_THROTTLE_REFRESH_SECONDS", "2.0"))
# A 4xx deferral halves the receiving domain's rate (not below MIN_FACTOR); it recovers by RECOVERY_PER_SECOND
# of the full rate a second. A domain with no rate of its own is slowed from BASE_RATE messages a second.
DELIVERY_BACKOFF_MIN_FACTOR = float(os.environ.get("DELIVERY_BACKOFF_MIN_FACTOR", str(1 / 64)))
DELIVERY_BACKOFF_RECOVERY_PER_SECOND = float(os.environ.get("DELIVERY_BACKOFF_RECOVERY_PER_SECOND", str(1 / 600)))
DELIVERY_BACKOFF_BASE_RATE = float(os.environ.get("DELIVERY_BACKOFF_BASE_RATE", "10"))

# --- Transactional mail (docs/architecture.md, docs/decisions/012) -----------------------------------------
# Decoded size of all attachments of one request; over it, 403 CONTENT_REJECTED.
TRANSACTIONAL_MAX_ATTACHMENT_BYTES = int(os.environ.get("TRANSACTIONAL_MAX_ATTACHMENT_BYTES", str(10 * 2**20)))
# to + cc + bcc of one request (each `to` address becomes its own message carrying the cc and bcc).
TRANSACTIONAL_MAX_RECIPIENTS = int(os.environ.get("TRANSACTIONAL_MAX_RECIPIENTS", "50"))
# Scheduled messages due within this many seconds are enqueued with an ETA (short: ETAs stay in memory).
TRANSACTIONAL_DISPATCH_HORIZON_SECONDS = int(os.environ.get("TRANSACTIONAL_DISPATCH_HORIZON_SECONDS", "10"))
TRANSACTIONAL_DISPATCH_MAX_PER_TICK = int(os.environ.get("TRANSACTIONAL_DISPATCH_MAX_PER_TICK", "5000"))
# A queued message whose task has not run this long after enqueueing is enqueued again (lost with Redis).
TRANSACTIONAL_REENQUEUE_AFTER_SECONDS = int(os.environ.get("TRANSACTIONAL_REENQUEUE_AFTER_SECONDS", "300"))
# SMTP 4xx: retry after base, 2x base, ... (capped), at most this many attempts, then `failed`.
TRANSACTIONAL_RETRY_BASE_SECONDS = int(os.environ.get("TRANSACTIONAL_RETRY_BASE_SECONDS", "30"))
TRANSACTIONAL_RETRY_MAX_SECONDS = int(os.environ.get("TRANSACTIONAL_RETRY_MAX_SECONDS", "1800"))
TRANSACTIONAL_MAX_ATTEMPTS = int(os.environ.get("TRANSACTIONAL_MAX_ATTEMPTS", "8"))
# A message `sending` for longer than this lost its worker mid-hand-off: marked failed, never resent.
# Longer than a send task may run (CELERY_TASK_TIME_LIMIT).
TRANSACTIONAL_SENDING_TIMEOUT_SECONDS = int(os.environ.get("TRANSACTIONAL_SENDING_TIMEOUT_SECONDS", "660"))

# --- Outbound webhooks (docs/decisions/040, 041) -------------------------------------------------------
# Off in production: a webhook URL that resolves to a loopback, private, link-local, multicast or reserved
# address is refused at creation and at every attempt. On in dev and test settings.
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", False)
WEBHOOK_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_CONNECT_TIMEOUT_SECONDS", "5"))
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10"))
# Requests per delivery task, and the most requests per second one endpoint gets (0: as fast as it answers).
WEBHOOK_BATCH_SIZE = int(os.environ.get("WEBHOOK_BATCH_SIZE", "100"))
WEBHOOK_RATE_PER_ENDPOINT = float(os.environ.get("WEBHOOK_RATE_PER_ENDPOINT", "100"))
# A delivery task stops after this long (and at half the soft time limit) and hands on to the next one.
WEBHOOK_TASK_SECONDS = float(os.environ.get("WEBHOOK_TASK_SECONDS", "20"))
WEBHOOK_LEASE_MARGIN_SECONDS = int(os.environ.get("WEBHOOK_LEASE_MARGIN_SECONDS", "30"))
# Events read per endpoint per tick; the rest next tick.
WEBHOOK_MATERIALIZE_PER_TICK = int(os.environ.get("WEBHOOK_MATERIALIZE_PER_TICK", "5000"))
# An event id seen this long ago counts as settled even if a transaction older than it is still open.
WEBHOOK_SETTLE_MAX_SECONDS = int(os.environ.get("WEBHOOK_SETTLE_MAX_SECONDS", "30"))
# A message is retried on the schedule for this long; an endpoint failing for this long is disabled.
WEBHOOK_RETRY_WINDOW_HOURS = float(os.environ.get("WEBHOOK_RETRY_WINDOW_HOURS", "72"))
WEBHOOK_DISABLE_AFTER_HOURS = float(os.environ.get("WEBHOOK_DISABLE_AFTER_HOURS", "72"))

# --- ESP events in: django-anymail's tracking webhooks at /anymail/<esp>/tracking/ (docs/decisions/042) -----
# WEBHOOK_SECRET is the "user:password" of the HTTP basic auth the ESP is configured with (Amazon SES through
# SNS has nothing else); Mailgun signs with its webhook signing key.
ANYMAIL = {
    key: value
    for key, value in {
        "WEBHOOK_SECRET": os.environ.get("ANYMAIL_WEBHOOK_SECRET"),
        "MAILGUN_WEBHOOK_SIGNING_KEY": os.environ.get("MAILGUN_WEBHOOK_SIGNING_KEY"),
    }.items()
    if value
}

# --- Templates (common.rendering, docs/decisions/018) ---------------------------------------------------
# The budget of rendering one field (subject, html, text or preheader) for one recipient: CPU seconds, and
# steps (loop iterations, calls, filters). Beyond either the field fails with "took too long to render".
TEMPLATE_RENDER_BUDGET_SECONDS = float(os.environ.get("TEMPLATE_RENDER_BUDGET_SECONDS", "0.5"))
TEMPLATE_RENDER_MAX_STEPS = int(os.environ.get("TEMPLATE_RENDER_MAX_STEPS", "1000000"))

# --- API ----------------------------------------------------------------------------------------------
# Largest request body the API accepts; beyond it a 413 PAYLOAD_TOO_LARGE envelope (docs/architecture.md#errors).
API_MAX_BODY_BYTES = int(os.environ.get("API_MAX_BODY_BYTES", str(32 * 1024 * 1024)))
API_MAX_PAGE_SIZE = 500
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
CONTACT_IMPORT_MAX_BYTES = int(os.environ.get("CONTACT_IMPORT_MAX_BYTES", str(32 * 1024 * 1024)))

# Requests per API key, and per client address on each tracking endpoint (/t/o/, /t/c/, /t/u/), counted
# atomically in Redis (common.ratelimit, docs/decisions/020). Parsed here: a typo stops the process from starting.
API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "6000/min")
TRACKING_RATE_LIMIT = os.environ.get("TRACKING_RATE_LIMIT", "600/min")
parse_rate(API_RATE_LIMIT)
parse_rate(TRACKING_RATE_LIMIT)
# How many reverse proxies of ours stand in front of the app, each appending to X-Forwarded-For. 0: the
# client is REMOTE_ADDR and X-Forwarded-For is ignored (anyone can write it). Behind one proxy, set 1, or
# every reader shares the proxy's address and its one tracking limit.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))
# Idempotency-Key (docs/decisions/023): a key replays its first answer for this long (the API's contract).
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
# A claim still in progress after this long belongs to a request that died (gunicorn kills a worker after
# 30 s by default); the next request with the key takes it over instead of getting 409 for a day.
IDEMPOTENCY_ABANDONED_AFTER = timedelta(seconds=int(os.environ.get("IDEMPOTENCY_ABANDONED_AFTER_SECONDS", "300")))
# --- CSV imports (the `imports` queue and worker, docs/decisions/019) ------------------------------------
# Rows per chunk; each chunk commits with the import's checkpoint, so a dead worker costs at most one.
CONTACT_IMPORT_CHUNK_SIZE = int(os.environ.get("CONTACT_IMPORT_CHUNK_SIZE", "5000"))
# A task processes chunks for this long (at most half the soft time limit), then enqueues the rest.
CONTACT_IMPORT_TASK_SECONDS = int(os.environ.get("CONTACT_IMPORT_TASK_SECONDS", "20"))
# An unfinished import without progress for this long lost its worker or task and is enqueued again from its
# checkpoint. Longer than an import may wait in the imports queue behind others (CONTACT_IMPORT_TASK_SECONDS
# for each import ahead of it, over the imports worker's concurrency); a false alarm costs a superseded task.
CONTACT_IMPORT_STALLED_SECONDS = int(os.environ.get("CONTACT_IMPORT_STALLED_SECONDS", "120"))
# Re-enqueues without a chunk committed in between before the import is failed with the reason.
CONTACT_IMPORT_MAX_ATTEMPTS = int(os.environ.get("CONTACT_IMPORT_MAX_ATTEMPTS", "3"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: a multipart form cannot carry the nested objects our bodies have, and advertising it made the
    # schema offer every body as a form. The CSV import opts in to multipart on its own (docs/decisions/022).
    "DEFAULT_PARSER_CLASSES": ["common.parsers.ObjectJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "common.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "common.schema.EnvelopeAutoSchema",
    "DEFAULT_THROTTLE_RATES": {"api_key": API_RATE_LIMIT},
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ApiKeyRateThrottle"],
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": False,
    "STRICT_JSON": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "mailsched API",
    "DESCRIPTION": (
        "Campaign scheduling and delivery engine. Authenticate with `Authorization: Bearer <key>`. "
        'Every error answers with the envelope `{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's JavaScript and CSS from the installed package, not a CDN: /api/v1/docs/ works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "APPEND_COMPONENTS": {
        "securitySchemes": {"BearerAuth": {"type": "http", "scheme": "bearer"}},
    },
    "SECURITY": [{"BearerAuth": []}],
    "ENUM_NAME_OVERRIDES": {
        "ContactStatusEnum": "audience.models.Contact.Status",
        "SuppressionReasonEnum": "audience.models.Suppression.Reason",
        "ContactImportStatusEnum": "audience.models.ContactImport.Status",
        "CampaignStatusEnum": "campaigns.models.Campaign.Status",
        "CampaignRunStatusEnum": "campaigns.models.CampaignRun.Status",
        "TransactionalMessageStatusEnum": "transactional.models.TransactionalMessage.Status",
        "EventTypeEnum": "delivery.models.Event.Type",
        "WebhookEndpointStatusEnum": "webhooks.models.WebhookEndpoint.Status",
        "WebhookMessageStatusEnum": "webhooks.models.WebhookMessage.Status",
        "WebhookAttemptTriggerEnum": "webhooks.models.WebhookAttempt.Trigger",
    },
}

# --- Email --------------------------------------------------------------------------------------------
from common.email_url import email_settings_from_url  # noqa: E402

EMAIL_URL = os.environ.get("EMAIL_URL", "smtp://127.0.0.1:1025")
globals().update(email_settings_from_url(EMAIL_URL))
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# A tracked link redirects for this many days after it was signed; later it answers a page that shows the
# destination as text (docs/decisions/024). Open pixels and unsubscribe links never expire.
TRACKING_CLICK_LINK_MAX_AGE_DAYS = int(os.environ.get("TRACKING_CLICK_LINK_MAX_AGE_DAYS", "365"))

# --- Sending domains ----------------------------------------------------------------------------------
SENDING_DOMAIN_TXT_PREFIX = "mailsched-verification="
# DKIM private keys are stored encrypted with a key derived from this secret (docs/decisions/080). Changing it
# makes the stored keys unreadable: set it once, on its own, so that SECRET_KEY can be rotated freely.
DKIM_KEY_ENCRYPTION_SECRET = os.environ.get("DKIM_KEY_ENCRYPTION_SECRET", SECRET_KEY)
# Off when the relay signs instead (OpenDKIM behind Postfix, docs/decisions/083).
DKIM_SIGN_MESSAGES = os.environ.get("DKIM_SIGN_MESSAGES", "1").lower() not in ("0", "false", "no", "off")
# The SPF mechanism every sending domain's record must contain to authorize our mail server: an include of
# the ESP or relay (`include:_spf.relay.example`), or the server itself (`a:smtp.example.net`, `ip4:...`).
# Empty: derived from EMAIL_URL's host.
SENDING_DOMAIN_SPF_MECHANISM = os.environ.get("SENDING_DOMAIN_SPF_MECHANISM", "")
# Gmail's feedback loop groups complaints by Feedback-ID; its last field names the sender (us).
FEEDBACK_ID_SENDER = os.environ.get("FEEDBACK_ID_SENDER", "mailsched")
# Complaint rate of a workspace over this many days: above WARN a warning, above HOLD no new sends (Gmail's
# bulk-sender thresholds, 0.1% and 0.3%). Below MIN_SENT messages in the window the rate is not judged.
COMPLAINT_RATE_WINDOW_DAYS = int(os.environ.get("COMPLAINT_RATE_WINDOW_DAYS", "7"))
COMPLAINT_RATE_WARN = float(os.environ.get("COMPLAINT_RATE_WARN", "0.001"))
COMPLAINT_RATE_HOLD = float(os.environ.get("COMPLAINT_RATE_HOLD", "0.003"))
COMPLAINT_RATE_MIN_SENT = int(os.environ.get("COMPLAINT_RATE_MIN_SENT", "100"))

# LOG_FORMAT=json (the production default) writes one JSON object a line, with the campaign, run, delivery or
# message ids the line concerns (common.logcontext); plain is for a terminal.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"ids": {"()": "common.logcontext.LogIdsFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["ids"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# How long a campaign state change waits for another one on the same campaign before answering 409
# CAMPAIGN_TRANSITION_IN_PROGRESS: long enough that quick requests serialize, short enough to answer promptly.
CAMPAIGN_LOCK_TIMEOUT_MS = int(os.environ.get("CAMPAIGN_LOCK_TIMEOUT_MS", "2000"))
API_KEY_LAST_USED_RESOLUTION = timedelta(minutes=1)

# Send Time Optimization (docs/decisions/030): engagement profiles and the scorer.
STO_HALF_LIFE_DAYS = float(os.environ.get("STO_HALF_LIFE_DAYS", "90"))
# An open this soon after the hand-off is a prefetch or a scanner, not a reader.
STO_MACHINE_OPEN_SECONDS = int(os.environ.get("STO_MACHINE_OPEN_SECONDS", "10"))
STO_CLICK_WEIGHT = float(os.environ.get("STO_CLICK_WEIGHT", "3"))
# Pseudo-opens of the audience's profile mixed into each contact's (the Dirichlet prior's strength).
STO_PRIOR_STRENGTH = float(os.environ.get("STO_PRIOR_STRENGTH", "2"))
# Share of each hour's evidence spread over the same hour of the other days (0 = days apart, 1 = hour of day).
STO_DAY_POOLING = float(os.environ.get("STO_DAY_POOLING", "0.5"))
STO_PRIOR_SAMPLE = int(os.environ.get("STO_PRIOR_SAMPLE", "50000"))
# PostgreSQL work_mem of the STO fan-out's transaction: its hash of the recipients and its sort of the plans
# stay in memory up to about a million recipients (docs/decisions/032).
STO_FANOUT_WORK_MEM_MB = int(os.environ.get("STO_FANOUT_WORK_MEM_MB", "128"))
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` when set (docs/operations.md#metrics).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
