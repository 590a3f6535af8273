from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, OperationalError, connection, transaction

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


def is_lock_timeout(exc: OperationalError) -> bool:
    """The database gave up waiting for a lock another transaction holds: PostgreSQL's lock_timeout
    (lock_not_available) or SQLite's busy timeout ("database is locked"). Retrying later may succeed."""
    if getattr(getattr(exc, "__cause__", None), "sqlstate", None) == "55P03":
        return True
    message = str(exc)
    return "database is locked" in message or "database table is locked" in message


@contextmanager
def atomic_or_busy(busy: type[errors.ApplicationError], *, timeout_ms: int) -> Iterator[None]:
    """transaction.atomic() for a state change that waits at most `timeout_ms` for the lock it needs, then
    raises `busy` (a 409) instead of a database error.

    On PostgreSQL the row lock is taken inside (the caller's SELECT ... FOR UPDATE under lock_timeout). On
    SQLite, whose writers take one lock on the whole file, the wait happens at BEGIN IMMEDIATE
    (DATABASES OPTIONS transaction_mode), so the busy timeout of this connection is lowered for the
    transaction and a lock error anywhere in it, its BEGIN and its COMMIT included, becomes `busy`
    (docs/decisions/070)."""
    try:
        with sqlite_busy_timeout(timeout_ms), transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = '{int(timeout_ms)}ms'")
            yield
    except OperationalError as exc:
        if is_lock_timeout(exc):
            raise busy() from None
        raise


@contextmanager
def sqlite_busy_timeout(timeout_ms: int) -> Iterator[None]:
    """On SQLite, outside a transaction: the block's writes wait at most `timeout_ms` for the file's lock
    (then "database is locked"). Elsewhere, and inside a transaction that already holds the lock, nothing."""
    outermost = connection.vendor == "sqlite" and not connection.in_atomic_block
    if outermost:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
    try:
        yield
    finally:
        if outermost and connection.connection is not None:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA busy_timeout = {_sqlite_default_busy_ms()}")


def _sqlite_default_busy_ms() -> int:
    return int(float(connection.settings_dict.get("OPTIONS", {}).get("timeout", 5)) * 1000)


def bulk_update_by_pk(model, objs, fields: list[str]) -> int:
    """`model.objects.bulk_update(objs, fields)`, in one statement on PostgreSQL: each field's values as one
    array, joined to the table by unnest(). Django's bulk_update writes a `CASE pk WHEN ... THEN ...` per
    field, which its ORM builds expression by expression and the database walks row by row (quadratic):
    6 s for 2,000 engagement profiles (docs/decisions/113). Returns the rows updated."""
    objs = list(objs)
    if not objs:
        return 0
    if connection.vendor != "postgresql":
        return model.objects.bulk_update(objs, fields, batch_size=1000)
    meta = model._meta
    pk = meta.pk
    chosen = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    columns = [pk, *chosen]
    arrays = [[field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs] for field in columns]
    unnest = ", ".join(f"%s::{field.db_type(connection)}[]" for field in columns)
    names = ", ".join(f"v{i}" for i in range(len(columns)))
    sets = ", ".join(f"{quote(field.column)} = v.v{i}" for i, field in enumerate(chosen, start=1))
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {sets} FROM unnest({unnest}) AS v({names}) "
        f"WHERE {quote(meta.db_table)}.{quote(pk.column)} = v.v0"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        return cursor.rowcount
