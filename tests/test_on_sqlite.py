"""The concurrency tests again, on SQLite: the embedded default of the run command must serialize state
changes and answer 409, never 500, when a lock cannot be had (docs/decisions/070). They run in a
subprocess with config.settings.test_sqlite, because one pytest process has one database backend."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY_TESTS = ["tests/campaigns/test_concurrency.py", "tests/transactional/test_concurrency.py"]

pytestmark = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="this run already is the SQLite run (it would start itself again)"
)


def test_the_concurrency_tests_pass_on_sqlite(tmp_path):
    report = tmp_path / "sqlite.xml"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test_sqlite",
        "SQLITE_TEST_PATH": str(tmp_path / "test.sqlite3"),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}", *CONCURRENCY_TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    suite = ET.parse(report).getroot().find("testsuite")
    ran, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    assert ran >= 8 and skipped == 0, f"{ran} tests, {skipped} skipped:\n{done.stdout[-3000:]}"
