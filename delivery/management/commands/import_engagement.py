import csv
import io
import itertools
from pathlib import Path

from django.core.management.base import CommandError

from accounts.management.commands._base import ServiceCommand
from accounts.selectors import workspace_get_by_name
from delivery.services import ENGAGEMENT_IMPORT_MAX_EVENTS, engagement_import

COLUMNS = ("email", "type", "occurred_at", "user_agent")
SHOWN = 20  # skipped lines written to stderr; the summary counts them all


class Command(ServiceCommand):
    help = (
        "Import open and click history (CSV with columns email, type, occurred_at and optionally user_agent) "
        "into a workspace, for Send Time Optimization. The last line of output is the summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV with a header row: email,type,occurred_at[,user_agent].")
        parser.add_argument("--workspace", required=True, help="Workspace name.")

    def handle(self, *args, file, workspace, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        ws = workspace_get_by_name(name=workspace)
        imported = skipped = 0
        with path.open("rb") as raw:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=""))
            missing = [c for c in COLUMNS[:3] if c not in (reader.fieldnames or [])]
            if missing:
                raise CommandError(f"The header lacks the column(s): {', '.join(missing)}")
            index = 0
            # Line numbers for people: the header is line 1, so row i (from 0) is line i + 2.
            while chunk := list(itertools.islice(reader, ENGAGEMENT_IMPORT_MAX_EVENTS)):
                result = engagement_import(workspace_id=ws.id, rows=chunk, first_index=index)
                index += len(chunk)
                imported += result.imported
                for entry in result.skipped[: max(0, SHOWN - skipped)]:
                    self.stderr.write(f"line {entry['index'] + 2}: {entry['reason']}")
                skipped += len(result.skipped)
        self.stdout.write(f"Imported {imported} engagement events into '{ws.name}', {skipped} skipped.")
