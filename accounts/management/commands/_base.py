from django.core.management.base import BaseCommand, CommandError

from common import errors


class ServiceCommand(BaseCommand):
    """Management commands call the same services as the API; an ApplicationError becomes a clean
    CommandError (exit code 1, message on stderr) instead of a traceback."""

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except errors.ApplicationError as exc:
            detail = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in exc.details.items())
            raise CommandError(f"{exc.message}{' (' + detail + ')' if detail else ''}") from None
