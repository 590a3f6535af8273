"""Time rules shared by every kind of mail (the project's docs/architecture.md, "Time"): parsing client
instants, wall-clock times across DST gaps and overlaps, and the one UTC output format.

Inputs from clients fail with `common.errors.ValidationError` (a 400 naming the field); a programming
mistake by a caller is a `ValueError`/`TypeError`, because a client could not have caused it.

- An instant must carry an offset or `Z`; a naive one is accepted only with an IANA zone and then means
  that wall-clock time there.
- A local time inside a spring-forward gap does not exist: one-off schedules refuse it, recurring ones
  move to the first instant after the gap (`on_gap="shift"`).
- A local time inside a fall-back overlap happens twice; we take the first occurrence (fold=0).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from common.errors import ValidationError
from common.timezones import is_valid_timezone

_EXAMPLE_INSTANT = "2026-07-01T09:00:00Z"


class NonexistentLocalTime(ValueError):
    """A wall-clock time skipped by a DST transition. Raised by `local_wall_time_to_utc(on_gap="error")`;
    callers turn it into a 400 for their own field, since only they know which field the user typed."""

    def __init__(self, local: datetime, zone: ZoneInfo, first_valid: datetime):
        self.local = local
        self.zone = zone
        self.first_valid = first_valid
        super().__init__(f"{local.isoformat()} does not exist in {zone.key}")


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by one-off and recurring schedules
# ---------------------------------------------------------------------------------------------------------


def local_wall_time_to_utc(*, local: datetime, zone: ZoneInfo, on_gap: Literal["error", "shift"]) -> datetime:
    """The UTC instant at which clocks in `zone` show `local` (naive).

    Ambiguous (fall-back) times resolve to the first occurrence. Gap (spring-forward) times raise
    `NonexistentLocalTime` with on_gap="error", or resolve to the transition instant itself with
    on_gap="shift" - the first valid instant after the gap (02:30 New York on 2026-03-08 -> 03:00 EDT).
    """
    if local.tzinfo is not None:
        raise ValueError("local_wall_time_to_utc expects a naive wall-clock datetime")
    if on_gap not in ("error", "shift"):
        raise ValueError(f"on_gap must be 'error' or 'shift', not {on_gap!r}")

    first = local.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    # A real wall time survives the round trip; a gap time comes back as a different wall time because
    # zoneinfo resolves it with one of the two offsets around the transition (PEP 495).
    if utc.astimezone(zone).replace(tzinfo=None) == local:
        return utc

    first_valid = _gap_end(local=local, zone=zone)
    if on_gap == "error":
        raise NonexistentLocalTime(local, zone, first_valid)
    return first_valid


def _gap_end(*, local: datetime, zone: ZoneInfo) -> datetime:
    """The transition instant that opens the gap containing `local`.

    fold=0 and fold=1 read `local` with the offsets from before and after the transition, giving two UTC
    instants on either side of it; the transition is found by bisection on whole seconds (tz data never
    changes offset mid-second), which takes about 17 steps even for a day-long gap like Samoa's in 2011.
    """
    a = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    b = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(a, b), max(a, b)
    before = lo.astimezone(zone).utcoffset()
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp()) + 1
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == before:
            lo_s = mid
        else:
            hi_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def to_utc_iso(dt: datetime) -> str:
    """ISO 8601 in UTC with `Z` (docs/architecture.md#time): "2026-07-01T09:00:00Z". Microseconds appear only when
    present, as DRF renders them, so an instant survives a round trip exactly."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("to_utc_iso needs an aware datetime; a naive one has no instant to render")
    text = dt.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def zone_error(value: Any) -> str:
    shown = value if not isinstance(value, str) or len(value) <= 64 else value[:64] + "..."
    return f"'{shown}' is not a known IANA timezone (e.g. 'Europe/London')."


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


# ---------------------------------------------------------------------------------------------------------
# One-off instants
# ---------------------------------------------------------------------------------------------------------


def parse_instant(
    *,
    value: str | datetime | None,
    timezone_name: str | None,
    field: str = "scheduled_at",
    now: datetime | None = None,
    timezone_field: str = "timezone",
) -> datetime:
    """Turn a client's `scheduled_at` (+ optional `timezone`) into an aware UTC instant in the future.

    We never guess a zone: a naive value needs `timezone_name`, because "09:00" read in the server's zone
    is the classic "sent at the wrong hour" incident. When the value carries an offset (or `Z`) and a zone
    is also given, the offset wins: it already pins one instant, and the zone stays valid for display.
    The zone is still validated then, so a typo is reported rather than stored. An empty `timezone_name`
    counts as absent (forms send "" for an untouched select).
    """
    errors: dict[str, list[str]] = {}
    zone: ZoneInfo | None = None
    if timezone_name is not None and timezone_name != "":
        if is_valid_timezone(timezone_name):
            zone = ZoneInfo(timezone_name)
        else:
            errors[timezone_field] = [zone_error(timezone_name)]
    # Both fields are checked before raising so that a client fixing one does not then meet the other.
    try:
        parsed = _parse_iso_datetime(value=value, field=field)
    except ValidationError as exc:
        errors.update(exc.details)
    if errors:
        raise ValidationError(details=errors)

    if parsed.tzinfo is None:
        if zone is None:
            raise ValidationError.for_field(
                field,
                f"{field} must include a UTC offset or Z, or give a {timezone_field} (an IANA name such as "
                f"'America/New_York') saying where this local time is; e.g. \"{_EXAMPLE_INSTANT}\".",
            )
        try:
            instant = local_wall_time_to_utc(local=parsed, zone=zone, on_gap="error")
        except NonexistentLocalTime as gap:
            first_valid = gap.first_valid.astimezone(zone).replace(tzinfo=None).isoformat()
            raise ValidationError.for_field(
                field,
                f"{parsed.isoformat()} does not exist in {zone.key}: clocks skip it at a daylight-saving "
                f"or offset change. Choose another time (the first valid local time after the gap is {first_valid}).",
            ) from None
        except OverflowError:
            raise ValidationError.for_field(field, f"{field} is out of the supported date range.") from None
    else:
        try:
            instant = parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError.for_field(field, f"{field} is out of the supported date range.") from None

    current = utc_now() if now is None else now
    require_aware("now", current)
    if instant <= current:
        raise ValidationError.for_field(field, f"{field} must be in the future.")
    return instant


def parse_aware_instant(*, value: str | None, field: str) -> datetime:
    """Turn a client's instant that must carry its own offset or `Z` (a list filter's bound such as `since`)
    into an aware UTC datetime. Same parsing and the same 400s as `parse_instant`, but no zone argument and
    no rule about the future: a naive value is refused, never read in the server's zone."""
    parsed = _parse_iso_datetime(value=value, field=field)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValidationError.for_field(field, f'{field} must include a UTC offset or Z, e.g. "{_EXAMPLE_INSTANT}".')
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValidationError.for_field(field, f"{field} is out of the supported date range.") from None


def _parse_iso_datetime(*, value: str | datetime | None, field: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if value is None or value == "":
        raise ValidationError.for_field(field, f"{field} is required.")
    invalid = f'{field} is not a valid ISO 8601 date-time; send e.g. "{_EXAMPLE_INSTANT}".'
    if not isinstance(value, str) or len(value) > 64:
        raise ValidationError.for_field(field, invalid)
    text = value.strip()
    try:
        date.fromisoformat(text)
    except ValueError:
        pass
    else:
        # fromisoformat would read a bare date as midnight; a schedule needs the user to say the hour.
        raise ValidationError.for_field(field, f'{field} must include a time of day, e.g. "{_EXAMPLE_INSTANT}".')
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError.for_field(field, invalid) from None


# ---------------------------------------------------------------------------------------------------------
# Recurring schedules
# ---------------------------------------------------------------------------------------------------------
