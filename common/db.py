from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, connection, transaction

from common import errors


def is_unique_violation(exc: IntegrityError) -> bool:
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    return "UNIQUE constraint failed" in str(exc)  # SQLite, the development default


@contextmanager
def unique_or_400(field: str, message: str) -> Iterator[None]:
    """Run the block in a savepoint; a unique-constraint violation becomes a 400 naming `field`.

    The database constraint, not a check-then-insert, is what keeps a name unique under concurrent
    requests. Any other integrity error (a broken reference) is a bug and propagates."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise errors.ValidationError.for_field(field, message) from None


def try_advisory_xact_lock(key: int) -> bool:
    """Take a PostgreSQL transaction-level advisory lock if no one holds it (call inside atomic()). True
    elsewhere: SQLite, the embedded default, serialises writers by itself and runs one beat."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        return bool(cursor.fetchone()[0])
