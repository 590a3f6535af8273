from datetime import timedelta

from django.core.management import CommandError
from django.utils import timezone

from accounts.management.commands._base import ServiceCommand
from accounts.selectors import workspace_get_by_name
from accounts.services import api_key_create


class Command(ServiceCommand):
    help = "Create an API key for a workspace and print it once (the last line is the key)."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="Workspace name.")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument("--sandbox", action="store_true", help="A sandbox key: accepted, nothing is sent.")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, metavar="N",
            help="Refuse the key N days from now (default: it never expires; revoke it in the admin).",
        )

    def handle(self, *args, workspace, name, sandbox, expires_in_days, **options):
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days is not None else None
        ws = workspace_get_by_name(name=workspace)
        api_key, raw = api_key_create(workspace=ws, name=name, sandbox=sandbox, expires_at=expires_at)
        kind = "sandbox " if sandbox else ""
        until = f", valid until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
        self.stderr.write(f"Created {kind}API key {api_key.prefix}… for '{ws.name}'{until}. It is shown only once.")
        self.stdout.write(raw)
