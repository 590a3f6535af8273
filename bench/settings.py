"""Settings of the benchmarks: the product's own (config.settings.base) plus django-post-office, one of the
alternatives measured in bench/send.py. Product code is unchanged by this: EMAIL_BACKEND stays the
product's (SMTP to the sink given by EMAIL_URL), and post-office sends through its own BACKENDS entry."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")

from config.settings.base import *  # noqa: E402,F401,F403
from config.settings.base import INSTALLED_APPS, LOGGING  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]
DEBUG = False
# The benchmarks measure the engine, not log formatting: warnings and errors only.
LOGGING = {**LOGGING, "root": {**LOGGING["root"], "level": os.environ.get("LOG_LEVEL", "WARNING")}}
POST_OFFICE = {
    # post-office's own delivery backend: Django's SMTP backend, so it talks to the same sink as the engine.
    "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
    "DEFAULT_PRIORITY": "medium",
    "BATCH_SIZE": 100,
    "THREADS_PER_PROCESS": 5,
    "LOG_LEVEL": 0,
    "MESSAGE_ID_ENABLED": True,
}
