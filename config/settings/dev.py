"""Development settings: the embedded defaults (SQLite file, local Redis, local SMTP sink).

For a developer's machine only: DEBUG is on and, without SECRET_KEY in the environment, the key is the one
published in config/settings/base.py, with which anyone can sign unsubscribe and click tokens. So these
settings refuse to start when ALLOWED_HOSTS names anything but this machine or a private network: a public
host name there means they are about to serve the world (docs/decisions/021).
"""

import ipaddress
import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import ALLOWED_HOSTS, DATA_DIR, env_bool

DEBUG = env_bool("DEBUG", True)


def _is_local_host(host: str) -> bool:
    name = host.strip().lower().rstrip(".")
    if name in {"localhost", "testserver"} or name.endswith(".localhost"):  # RFC 6761 §6.3
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


_public = [host for host in ALLOWED_HOSTS if not _is_local_host(host)]
if _public:
    raise ImproperlyConfigured(
        f"config.settings.dev is for a developer's machine (DEBUG, a published SECRET_KEY) but ALLOWED_HOSTS "
        f"names {', '.join(map(repr, _public))}. To serve it, set DJANGO_SETTINGS_MODULE=config.settings.production."
    )

DATA_DIR.mkdir(parents=True, exist_ok=True)
os.makedirs(DATA_DIR / "media", exist_ok=True)
os.makedirs(DATA_DIR / "static", exist_ok=True)

# gunicorn serves the admin's static files straight from the apps in development (no collectstatic).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Webhook receivers on this machine (local test servers) are allowed here, never in production.
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", True)
