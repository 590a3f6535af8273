from accounts.management.commands._base import ServiceCommand
from accounts.models import Workspace
from accounts.selectors import workspace_get_by_name
from delivery.services import engagement_rebuild


class Command(ServiceCommand):
    help = (
        "Recompute every contact's engagement profile from the event table and the deliveries, with the "
        "settings in force now (half-life, machine-open rules, click weight). The last line is the summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="Only this workspace (by name); all workspaces by default.")

    def handle(self, *args, workspace=None, **options):
        workspaces = [workspace_get_by_name(name=workspace)] if workspace else list(Workspace.objects.order_by("name"))
        total = 0
        for ws in workspaces:
            written = engagement_rebuild(workspace_id=ws.id)
            self.stderr.write(f"{ws.name}: {written} profiles")
            total += written
        self.stdout.write(f"Rebuilt {total} engagement profiles in {len(workspaces)} workspace(s).")
