from pathlib import Path

from django.core.management.base import CommandError
from tqdm import tqdm

from accounts.management.commands._base import ServiceCommand
from accounts.selectors import workspace_get_by_name
from audience.selectors import contact_import_get
from audience.services import contact_import_create, contact_import_process


class Command(ServiceCommand):
    help = (
        "Import contacts from a CSV file into a workspace, in this process (no worker needed). "
        "The last line of output is the summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV with a header row; an 'email' column is required.")
        parser.add_argument("--workspace", required=True, help="Workspace name.")
        parser.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar.")

    def handle(self, *args, file, workspace, no_progress, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        ws = workspace_get_by_name(name=workspace)
        with path.open("rb") as handle:
            contact_import = contact_import_create(workspace=ws, filename=path.name, fileobj=handle)
        # The bar goes to stderr so stdout stays a clean, scriptable summary.
        with tqdm(total=contact_import.total_rows, unit="row", disable=no_progress, file=self.stderr) as bar:
            contact_import_process(import_id=contact_import.id, on_progress=bar.update)
        result = contact_import_get(workspace=ws, import_id=contact_import.id)
        for entry in result.errors[:20]:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in entry["errors"].items())
            self.stderr.write(f"line {entry['line']} ({entry['email'] or 'no email'}): {problems}")
        if result.status == result.Status.FAILED:
            raise CommandError(f"Import {result.id} failed: {result.failure_reason}")
        self.stdout.write(
            f"Imported {result.total_rows} rows into '{ws.name}': {result.created_count} created, "
            f"{result.updated_count} updated, {result.error_count} skipped (import {result.id})."
        )
