import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from common.email_url import email_settings_from_url

# What a server's environment may or may not carry; each subprocess below starts without them.
DEPLOY_VARIABLES = {"SECRET_KEY", "DJANGO_SETTINGS_MODULE", "ALLOWED_HOSTS", "DEBUG"}
SERVER_SECRET = "s" * 50
SHOW_SETTINGS = (
    "from django.conf import settings; import json; "
    "print(json.dumps([settings.SETTINGS_MODULE, settings.DEBUG, settings.SECRET_KEY]))"
)


def _run(args: list[str], env_overrides: dict, data_dir=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in DEPLOY_VARIABLES}
    if data_dir is not None:
        env["DATA_DIR"] = str(data_dir)  # the dev settings create their directories there, not in the checkout
    return subprocess.run(
        args, env={**env, **env_overrides}, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )


def _python(code: str, env_overrides: dict, data_dir=None) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-c", code], env_overrides, data_dir)


def _import_production(env_overrides: dict) -> subprocess.CompletedProcess:
    return _python(
        "import django; django.setup()", {**env_overrides, "DJANGO_SETTINGS_MODULE": "config.settings.production"}
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
    with pytest.raises(ValueError, match="not supported"):
        email_settings_from_url("carrier-pigeon://coop")


# --- which settings a process gets when nobody says (docs/decisions/021) ----------------------------------


def test_wsgi_without_a_settings_module_refuses_to_start_without_secret_key():
    result = _python("import config.wsgi", {})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_wsgi_without_a_settings_module_serves_the_production_settings():
    result = _python(f"import config.wsgi; {SHOW_SETTINGS}", {"SECRET_KEY": SERVER_SECRET, "ALLOWED_HOSTS": "a.b"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["config.settings.production", False, SERVER_SECRET]


def test_celery_app_without_a_settings_module_refuses_to_start_without_secret_key():
    # `celery report` loads the app and its Django settings as a worker does, without needing a broker.
    result = _run([sys.executable, "-m", "celery", "-A", "config", "report"], {})
    assert "SECRET_KEY must be set" in result.stderr
    assert "DEBUG: True" not in result.stdout


def test_celery_app_without_a_settings_module_uses_the_production_settings():
    result = _run(
        [sys.executable, "-m", "celery", "-A", "config", "report"],
        {"SECRET_KEY": SERVER_SECRET, "ALLOWED_HOSTS": "a.example"},
    )
    assert result.returncode == 0, result.stderr
    assert "SETTINGS_MODULE: 'config.settings.production'" in result.stdout
    assert "DEBUG: False" in result.stdout


def test_manage_py_without_a_settings_module_uses_dev_and_says_so(tmp_path):
    result = _run([sys.executable, "manage.py", "shell", "-c", SHOW_SETTINGS], {}, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    # Django 5.2's shell first prints how many objects it imported.
    assert json.loads(result.stdout.splitlines()[-1])[:2] == ["config.settings.dev", True]
    assert "DJANGO_SETTINGS_MODULE is not set, using config.settings.dev" in result.stderr


def test_manage_py_without_a_settings_module_but_with_a_secret_key_uses_production():
    server = {"SECRET_KEY": SERVER_SECRET, "ALLOWED_HOSTS": "a.b"}
    result = _run([sys.executable, "manage.py", "shell", "-c", SHOW_SETTINGS], server)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == ["config.settings.production", False, SERVER_SECRET]
    assert "DJANGO_SETTINGS_MODULE is not set" not in result.stderr


@pytest.mark.parametrize("hosts", ["mail.example.com", "localhost,mail.example.com", "*", "93.184.215.14"])
def test_dev_settings_refuse_to_start_for_a_public_host(tmp_path, hosts):
    result = _python(
        "import django; django.setup()",
        {"DJANGO_SETTINGS_MODULE": "config.settings.dev", "ALLOWED_HOSTS": hosts},
        data_dir=tmp_path,
    )
    assert result.returncode != 0
    assert "config.settings.dev is for a developer's machine" in result.stderr


def test_dev_settings_start_for_this_machine_and_a_private_network(tmp_path):
    result = _python(
        f"import django; django.setup(); {SHOW_SETTINGS}",
        {"DJANGO_SETTINGS_MODULE": "config.settings.dev", "ALLOWED_HOSTS": "localhost,app.localhost,[::1],192.168.1.2"},
        data_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[:2] == ["config.settings.dev", True]
