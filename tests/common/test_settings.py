import os
import subprocess
import sys

from django.conf import settings

from common.email_url import email_settings_from_url


def _import_production(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.production"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_refuse_to_start_without_secret_key():
    result = _import_production({})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_start_with_secret_key():
    result = _import_production({"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "mail.example.com"})
    assert result.returncode == 0, result.stderr


def test_the_test_run_uses_postgresql():
    # CI's contract: the suite runs on PostgreSQL, not the embedded SQLite default.
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def test_email_url_smtp_with_tls_and_credentials():
    conf = email_settings_from_url("smtp+tls://user%40x:p%3Ass@smtp.example.com:587")
    assert conf["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (conf["EMAIL_HOST"], conf["EMAIL_PORT"]) == ("smtp.example.com", 587)
    assert (conf["EMAIL_HOST_USER"], conf["EMAIL_HOST_PASSWORD"]) == ("user@x", "p:ss")
    assert conf["EMAIL_USE_TLS"] is True and conf["EMAIL_USE_SSL"] is False


def test_email_url_console():
    assert email_settings_from_url("console:")["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"


def test_email_url_rejects_unknown_scheme():
    import pytest

    with pytest.raises(ValueError, match="not supported"):
        email_settings_from_url("carrier-pigeon://coop")
