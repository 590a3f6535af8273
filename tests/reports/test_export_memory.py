"""An export of 100,000 recipients runs in constant memory: its peak resident set is no larger than that of
an export of 10,000, measured in a fresh process for each (VmHWM from /proc)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection

from delivery.models import Delivery, Event
from reports.models import ReportExport
from reports.services import reports_aggregate
from tests.factories import CampaignRunFactory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="fills with SQL"),
]

_BUILD = """
import django, json, sys
django.setup()
from reports.services import report_export_build
report_export_build(export_id=sys.argv[1])
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"hwm_kb": int(status["VmHWM"].split()[0])}))
"""


def _fill(run, recipients: int) -> None:
    """`recipients` sent deliveries; every third opened twice, every seventh clicked once."""
    d, e = Delivery._meta.db_table, Event._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {d} (workspace_id, run_id, campaign_id, email, status, send_at, sent_at, send_reason, "
            f"send_reason_code, attempts, message_id, error, possible_duplicate, sandbox) "
            f"SELECT %s, %s, %s, 'r' || i || '@example.org', 'sent', now(), now(), '', '', 1, '', '', false, false "
            f"FROM generate_series(1, %s) i",
            [run.workspace_id, run.pk, run.campaign_id, recipients],
        )
        for type, every, times in (("sent", 1, 1), ("opened", 3, 2), ("clicked", 7, 1)):
            cursor.execute(
                f"INSERT INTO {e} (workspace_id, type, occurred_at, email, message_id, campaign_id, run_id, data) "
                f"SELECT %s, %s, now(), 'r' || i || '@example.org', '', %s, %s, "
                f"jsonb_build_object('url', 'https://x.example/', 'machine', false) "
                f"FROM generate_series(1, %s) i, generate_series(1, %s) t WHERE i %% %s = 0",
                [run.workspace_id, type, run.campaign_id, run.pk, recipients, times, every],
            )


def _build_in_fresh_process(export: ReportExport) -> int:
    env = {**os.environ, "DATABASE_URL": _test_database_url()}
    out = subprocess.run(
        [sys.executable, "-c", _BUILD, str(export.pk)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])["hwm_kb"]


def _test_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_an_export_of_100000_recipients_has_the_peak_memory_of_one_of_10000(capsys):
    peaks, exports = {}, {}
    for size in (10_000, 100_000):
        run = CampaignRunFactory(total=size)
        _fill(run, size)
        exports[size] = ReportExport.objects.create(
            workspace_id=run.workspace_id, campaign_id=run.campaign_id, expires_at=run.due_at
        )
    reports_aggregate()
    for size, export in exports.items():
        peaks[size] = _build_in_fresh_process(export)
    with capsys.disabled():
        print(f"\nexport peak RSS (VmHWM): 10,000 rows {peaks[10_000] / 1024:.1f} MiB, "
              f"100,000 rows {peaks[100_000] / 1024:.1f} MiB")  # fmt: skip
    big = ReportExport.objects.get(pk=exports[100_000].pk)
    with default_storage.open(big.file, "r") as handle:
        rows = list(csv.DictReader(handle))
    assert (big.status, big.rows, len(rows)) == ("done", 100_000, 100_000)
    assert sum(int(row["opens"]) for row in rows) == 2 * (100_000 // 3)
    assert sum(bool(row["first_click_at"]) for row in rows) == 100_000 // 7
    # Ten times the rows, the same peak within a few MiB (allocator noise); a buffered export would add tens.
    assert peaks[100_000] - peaks[10_000] < 8 * 1024
