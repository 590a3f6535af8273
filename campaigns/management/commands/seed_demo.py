import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from accounts.management.commands._base import ServiceCommand
from accounts.models import ApiKey
from accounts.services import api_key_create
from campaigns.demo import DEMO_WORKSPACE, demo_seed


def demo_key_file() -> Path:
    return Path(settings.DATA_DIR) / "demo-api-key"


class Command(ServiceCommand):
    help = (
        "Create the 'Demo' workspace: an API key, a few thousand contacts across time zones with open and click "
        "histories, labels, segments and three campaigns (one due in a minute, one send-time optimised, one "
        "weekly); in development also the admin login admin/admin. Safe to run again: it only creates what is "
        "missing. The last line is the demo workspace id."
    )

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=3000, help="How many demo contacts (default 3000).")

    def handle(self, *args, contacts, **options):
        seed = demo_seed(contacts=contacts)
        for what in seed.created:
            self.stdout.write(f"Created {what}.")
        self._api_key(seed.workspace)
        if settings.DEBUG:
            user_model = get_user_model()
            if not user_model.objects.filter(is_superuser=True).exists():
                user_model.objects.create_superuser("admin", "admin@example.com", "admin")
                self.stdout.write("Admin login created for development: admin / admin at /admin/")
        self.stdout.write(str(seed.workspace.id))

    def _api_key(self, workspace) -> None:
        """Keys are stored hashed, so a key can be shown only when it is made. In development the demo's key
        is also kept in data/demo-api-key (readable by this user only), so scripts/run can show it on every
        start; elsewhere it is printed once."""
        path = demo_key_file()
        if settings.DEBUG and path.exists():
            raw = path.read_text().strip()
            if ApiKey.objects.filter(workspace=workspace, revoked=False, key_hash=ApiKey.hash_key(raw)).exists():
                return
        elif workspace.api_keys.filter(name="demo").exists():
            return
        _, raw = api_key_create(workspace=workspace, name="demo")
        self.stdout.write(f"{DEMO_WORKSPACE} workspace API key (shown once): {raw}")
        if settings.DEBUG:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(raw + "\n")
