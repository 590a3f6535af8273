from accounts.management.commands._base import ServiceCommand
from accounts.selectors import workspace_get_by_name
from accounts.services import api_key_create


class Command(ServiceCommand):
    help = "Create an API key for a workspace and print it once (the last line is the key)."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="Workspace name.")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument("--sandbox", action="store_true", help="A sandbox key: accepted, nothing is sent.")

    def handle(self, *args, workspace, name, sandbox, **options):
        ws = workspace_get_by_name(name=workspace)
        api_key, raw = api_key_create(workspace=ws, name=name, sandbox=sandbox)
        kind = "sandbox " if sandbox else ""
        self.stderr.write(f"Created {kind}API key {api_key.prefix}… for '{ws.name}'. It is shown only once.")
        self.stdout.write(raw)
