from accounts.management.commands._base import ServiceCommand
from accounts.services import workspace_create


class Command(ServiceCommand):
    help = "Create a workspace. Prints its id on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--timezone", default="UTC", help="IANA zone, the default for its contacts.")

    def handle(self, *args, name, timezone, **options):
        workspace = workspace_create(name=name, timezone=timezone)
        self.stdout.write(f"Created workspace '{workspace.name}' ({workspace.timezone}).")
        self.stdout.write(str(workspace.id))
