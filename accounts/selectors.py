from accounts.models import Workspace
from common import errors


def workspace_get_by_name(*, name: str) -> Workspace:
    try:
        return Workspace.objects.get(name=name)
    except Workspace.DoesNotExist:
        raise errors.NotFound(f"No workspace named '{name}'.") from None
