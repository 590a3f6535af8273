"""Test settings: real PostgreSQL (DATABASE_URL) and real Redis, as in CI."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from .base import *  # noqa: E402,F401,F403
from .base import DATA_DIR, env_bool  # noqa: E402

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = DATA_DIR / "test-media"
WHITENOISE_USE_FINDERS = True
os.makedirs(DATA_DIR / "static", exist_ok=True)
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if os.environ.get("TEST_EMAIL_URL"):
    # The worker subprocesses of the end-to-end tests send over real SMTP to the test's sink.
    from common.email_url import email_settings_from_url  # noqa: E402

    globals().update(email_settings_from_url(os.environ["TEST_EMAIL_URL"]))
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["REDIS_URL"],
        "KEY_PREFIX": "mailsched-test",
    }
}

# Webhook receivers on this machine (local test servers) are allowed here, never in production.
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", True)
