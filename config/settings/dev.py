"""Development settings: the embedded defaults (SQLite file, local Redis, local SMTP sink)."""

import os

from .base import *  # noqa: F401,F403
from .base import DATA_DIR, env_bool

DEBUG = env_bool("DEBUG", True)
DATA_DIR.mkdir(parents=True, exist_ok=True)
os.makedirs(DATA_DIR / "media", exist_ok=True)
os.makedirs(DATA_DIR / "static", exist_ok=True)

# gunicorn serves the admin's static files straight from the apps in development (no collectstatic).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
