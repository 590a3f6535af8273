from django.conf import settings
from django.contrib.auth import get_user_model

from accounts.management.commands._base import ServiceCommand
from accounts.models import Workspace
from accounts.services import api_key_create, workspace_create


class Command(ServiceCommand):
    help = (
        "Create a 'Demo' workspace with an API key (and, in development, an admin login admin/admin). "
        "Safe to run again: it only creates what is missing. The last line is the demo workspace id."
    )

    def handle(self, *args, **options):
        workspace = Workspace.objects.filter(name="Demo").first()
        if workspace is None:
            workspace = workspace_create(name="Demo", timezone="UTC")
            _, raw = api_key_create(workspace=workspace, name="demo")
            self.stdout.write(f"Demo workspace created. Its API key (shown once): {raw}")
        if settings.DEBUG:
            user_model = get_user_model()
            if not user_model.objects.filter(is_superuser=True).exists():
                user_model.objects.create_superuser("admin", "admin@example.com", "admin")
                self.stdout.write("Admin login created for development: admin / admin at /admin/")
        self.stdout.write(str(workspace.id))
