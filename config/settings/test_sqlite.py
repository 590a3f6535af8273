"""The test settings on the embedded default, SQLite, instead of PostgreSQL. The concurrency tests run on
these too (tests/test_on_sqlite.py starts them in a subprocess), since the run command's users get SQLite.

The test database is a file (SQLITE_TEST_PATH), not Django's in-memory default: an in-memory database
shared between threads uses table locks without the busy timeout, which is not what web, workers and beat
share on disk."""

import os
import tempfile

_path = os.environ.get("SQLITE_TEST_PATH") or os.path.join(
    tempfile.gettempdir(), f"mailsched-test-{os.getuid()}.sqlite3"
)
os.environ["DATABASE_URL"] = f"sqlite:///{_path}"

from .test import *  # noqa: E402,F401,F403
from .test import DATABASES  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": _path}
