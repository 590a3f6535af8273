"""The time rules of campaign scheduling (docs/architecture.md#time and the schedule body of §6), as pure functions.

Nothing here touches the database or the clock unless asked to: every function that needs "now" takes it,
so the services, the admin, the beat task and the tests all compute the same instants. Inputs from clients
fail with `common.errors.ValidationError` (a 400 naming the field); a programming mistake by a caller
(a naive `after`, a negative `count`) is a `ValueError`/`TypeError`, because a client could not have caused it.

Wall-clock rules, shared by one-off and recurring schedules:
- a local time inside a spring-forward gap does not exist. A one-off schedule refuses it (the user must
  say what they mean); a recurring one moves to the first instant after the gap, so a "02:30 daily" series
  still sends on the transition day instead of silently skipping it;
- a local time inside a fall-back overlap happens twice; we take the first occurrence (fold=0), which is
  what a person reading their calendar on that morning expects.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from itertools import islice
from typing import Any, Literal
from zoneinfo import ZoneInfo

from common.errors import ValidationError
from common.timerules import (
    local_wall_time_to_utc,
    require_aware,
    utc_now,
    zone_error,
)
from common.timezones import is_valid_timezone

Frequency = Literal["daily", "weekly", "monthly"]
FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly")
MAX_INTERVAL = 365
UPCOMING_RUNS_COUNT = 5
# A guard for callers, not a product limit: nothing shows more than a handful of upcoming runs.
MAX_RUNS_PER_CALL = 1000

_HH_MM = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")
_YYYY_MM_DD = re.compile(r"\d{4}-\d{2}-\d{2}")
_RECURRING_KEYS = frozenset({"frequency", "interval", "days_of_week", "day_of_month", "time", "time_zone", "end_date"})
_EXAMPLE_INSTANT = "2026-07-01T09:00:00Z"


@dataclass(frozen=True)
class RecurringConfig:
    """A validated recurring schedule. Build it with `parse_recurring_config` (client input) or
    `from_dict` (stored data); the constructor itself does not validate.

    `days_of_week` is set only for weekly (sorted, unique, Monday=1) and `day_of_month` only for monthly,
    so two configs that send at the same times compare equal.
    """

    frequency: Frequency
    interval: int
    time: dt_time
    time_zone: str
    days_of_week: tuple[int, ...] = ()
    day_of_month: int | None = None
    end_date: date | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the same shape a client sends, so the API can echo it and a client can send it
        back unchanged."""
        data: dict[str, Any] = {"frequency": self.frequency, "interval": self.interval}
        if self.frequency == "weekly":
            data["days_of_week"] = list(self.days_of_week)
        if self.frequency == "monthly":
            data["day_of_month"] = self.day_of_month
        data["time"] = self.time.strftime("%H:%M")
        data["time_zone"] = self.time_zone
        data["end_date"] = self.end_date.isoformat() if self.end_date else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecurringConfig:
        """Load a stored config. Applies the same shape rules as client input but not the "now" rules (a
        stored end_date may lie in the past by now). Corrupt stored data is a ValueError, not a 400: the
        client reading it did nothing wrong."""
        config, errors = _validate_recurring(data, prefix="recurring_config")
        if errors or config is None:
            raise ValueError(f"stored recurring config is invalid: {errors}")
        return config


def parse_recurring_config(
    data: Any,
    *,
    now: datetime | None = None,
    anchor: date | None = None,
    prefix: str = "recurring_config",
) -> RecurringConfig:
    """Validate a client's `recurring_config` object. Every problem is reported at once, keyed
    `recurring_config.<field>`.

    Decisions: `interval` defaults to 1. `days_of_week` belongs to weekly and `day_of_month` to monthly
    only; sending one with another frequency is an error rather than silently ignored (it means the client
    believes the schedule does something it will not do); null counts as absent. Duplicate weekdays are
    merged. `time` is strict "HH:MM" (two-digit hour, 00:00-23:59) so "9:00" and "09:00:00" are refused
    with an example rather than read one way or another. `end_date` (inclusive, in `time_zone`) may be
    today but not earlier, and must leave at least one run after `now` - otherwise the campaign would be
    "scheduled" for something that never happens. That last check counts intervals from `anchor` exactly
    as `next_runs` would (default: today in `time_zone`).
    """
    config, errors = _validate_recurring(data, prefix=prefix)
    current = utc_now() if now is None else now
    require_aware("now", current)
    if config is not None and config.end_date is not None:
        today = current.astimezone(config.zone).date()
        if config.end_date < today:
            errors[f"{prefix}.end_date"] = [
                f"end_date must not be before today ({today.isoformat()} in {config.time_zone})."
            ]
        elif not next_runs(config=config, after=current, count=1, anchor=anchor):
            errors[f"{prefix}.end_date"] = [
                f"The schedule has no run between now and end_date {config.end_date.isoformat()}; "
                "choose a later end_date."
            ]
    if errors:
        raise ValidationError(details=errors)
    assert config is not None  # no errors means every field was read
    return config


def _validate_recurring(data: Any, *, prefix: str) -> tuple[RecurringConfig | None, dict[str, list[str]]]:
    """Shape rules shared by client input and stored data. Returns the config only when there is no error."""
    if not isinstance(data, dict):
        return None, {prefix: [f"{prefix} must be an object."]}

    errors: dict[str, list[str]] = {}

    def fail(name: str, message: str) -> None:
        errors.setdefault(f"{prefix}.{name}", []).append(message)

    for key in sorted(str(k) for k in data if k not in _RECURRING_KEYS):
        fail(key, "Unknown field.")

    frequency = data.get("frequency")
    if frequency is None:
        fail("frequency", "This field is required.")
    elif frequency not in FREQUENCIES:
        fail("frequency", "frequency must be one of: daily, weekly, monthly.")

    interval = data.get("interval", 1)
    # bool is a subclass of int: without this check `true` would be accepted as "every 1".
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= MAX_INTERVAL:
        fail("interval", f"interval must be a whole number from 1 to {MAX_INTERVAL}.")

    days = data.get("days_of_week")
    days_of_week: tuple[int, ...] = ()
    if frequency == "weekly":
        if days is None:
            fail("days_of_week", "days_of_week is required for a weekly schedule (1 = Monday ... 7 = Sunday).")
        elif not isinstance(days, list | tuple) or not days:
            fail("days_of_week", "days_of_week must be a non-empty list of days, 1 = Monday ... 7 = Sunday.")
        elif any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 7 for d in days):
            fail("days_of_week", "days_of_week must contain whole numbers from 1 (Monday) to 7 (Sunday).")
        else:
            days_of_week = tuple(sorted(set(days)))
    elif days is not None and frequency in FREQUENCIES:
        fail("days_of_week", "days_of_week applies only to weekly schedules.")

    dom = data.get("day_of_month")
    day_of_month: int | None = None
    if frequency == "monthly":
        if dom is None:
            fail("day_of_month", "day_of_month is required for a monthly schedule (1 to 31).")
        elif isinstance(dom, bool) or not isinstance(dom, int) or not 1 <= dom <= 31:
            fail("day_of_month", "day_of_month must be a whole number from 1 to 31.")
        else:
            day_of_month = dom
    elif dom is not None and frequency in FREQUENCIES:
        fail("day_of_month", "day_of_month applies only to monthly schedules.")

    raw_time = data.get("time")
    wall_time: dt_time | None = None
    if raw_time is None:
        fail("time", 'This field is required (24-hour "HH:MM", e.g. "09:00").')
    elif not isinstance(raw_time, str) or not _HH_MM.fullmatch(raw_time):
        fail("time", 'time must be 24-hour "HH:MM" from "00:00" to "23:59", e.g. "09:00".')
    else:
        wall_time = dt_time(int(raw_time[:2]), int(raw_time[3:]))

    time_zone = data.get("time_zone")
    if time_zone is None:
        fail("time_zone", "This field is required (an IANA name such as 'America/New_York').")
    elif not is_valid_timezone(time_zone):
        fail("time_zone", zone_error(time_zone))

    raw_end = data.get("end_date")
    end_date: date | None = None
    if raw_end is not None:
        try:
            if not isinstance(raw_end, str) or not _YYYY_MM_DD.fullmatch(raw_end):
                raise ValueError
            end_date = date.fromisoformat(raw_end)
        except ValueError:
            fail("end_date", 'end_date must be a date "YYYY-MM-DD", e.g. "2026-12-31".')

    if errors:
        return None, errors
    config = RecurringConfig(
        frequency=frequency,
        interval=interval,
        time=wall_time,
        time_zone=time_zone,
        days_of_week=days_of_week,
        day_of_month=day_of_month,
        end_date=end_date,
    )
    return config, errors


def next_runs(
    *,
    config: RecurringConfig,
    after: datetime,
    count: int = UPCOMING_RUNS_COUNT,
    anchor: date | None = None,
) -> list[datetime]:
    """The next `count` send instants (aware UTC), strictly after `after`, oldest first.

    Dates are computed on the calendar of `config.time_zone` and the wall time is kept fixed there, so the
    UTC instant moves with DST (09:00 New York is 13:00Z in summer, 14:00Z in winter).

    `interval` counts from `anchor`, like DTSTART in an iCalendar RRULE: daily runs fall on anchor + k *
    interval days; weekly runs on the chosen weekdays of the Monday-based weeks anchor_week + k * interval;
    monthly runs in the months anchor_month + k * interval, on day_of_month or the month's last day when
    it is shorter. Nothing runs before the anchor. The caller must store the anchor (the local date the
    schedule was created) and pass it on every call, or "every 2 weeks" would re-phase each time it is
    computed; without it, the local date of `after` is used, which is right only at creation.

    The result is shorter than `count` (or empty) once `end_date` (inclusive, local) is passed.
    """
    require_aware("after", after)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_RUNS_PER_CALL:
        raise ValueError(f"count must be an int from 0 to {MAX_RUNS_PER_CALL}")
    zone = config.zone
    after_local_date = after.astimezone(zone).date()
    start_anchor = after_local_date if anchor is None else anchor

    # At most two candidate dates (the local day before `after` and the day of `after`) can fall at or
    # before `after`; every later one is a run. The slice makes that bound explicit, so a mistake in the
    # date arithmetic ends the loop early instead of never.
    candidates = islice(_candidate_dates(config=config, anchor=start_anchor, from_date=after_local_date), count + 8)
    runs: list[datetime] = []
    try:
        for run_date in candidates:
            if len(runs) >= count:
                break
            if config.end_date is not None and run_date > config.end_date:
                break
            instant = local_wall_time_to_utc(local=datetime.combine(run_date, config.time), zone=zone, on_gap="shift")
            if instant > after and (not runs or instant > runs[-1]):
                runs.append(instant)
    except OverflowError:
        # Only reachable with dates near year 9999; there is simply no later run to offer.
        pass
    return runs


def upcoming_runs(
    *, config: RecurringConfig, now: datetime | None = None, anchor: date | None = None
) -> list[datetime]:
    """The campaign's `upcoming_runs` field: the next five instants after now."""
    current = utc_now() if now is None else now
    return next_runs(config=config, after=current, count=UPCOMING_RUNS_COUNT, anchor=anchor)


def _candidate_dates(*, config: RecurringConfig, anchor: date, from_date: date):
    """Local run dates in increasing order, starting at the period that holds `from_date` (or the anchor,
    if later).

    Starts one day early because a gap shift can, in a zone that skipped a whole day (Samoa 2011), push a
    date's run past midnight. Every period yields at least one date (weekly has >= 1 weekday; monthly
    clamps to the last day), so a caller wanting n runs stops after about n + 2 periods: the generator is
    infinite but each call of `next_runs` consumes a bounded number of items.
    """
    start = max(anchor, from_date - timedelta(days=1))
    interval = config.interval

    if config.frequency == "daily":
        k = -(-(start - anchor).days // interval)  # ceil: first period on or after `start`
        while True:
            yield anchor + timedelta(days=k * interval)
            k += 1

    elif config.frequency == "weekly":
        anchor_week = anchor - timedelta(days=anchor.isoweekday() - 1)
        start_week = start - timedelta(days=start.isoweekday() - 1)
        k = -(-((start_week - anchor_week).days // 7) // interval)
        while True:
            week = anchor_week + timedelta(weeks=k * interval)
            for day in config.days_of_week:
                run_date = week + timedelta(days=day - 1)
                if run_date >= start:
                    yield run_date
            k += 1

    else:
        assert config.day_of_month is not None
        anchor_month = anchor.year * 12 + anchor.month - 1
        start_month = start.year * 12 + start.month - 1
        k = -(-(start_month - anchor_month) // interval)
        while True:
            year, month0 = divmod(anchor_month + k * interval, 12)
            if year > date.max.year:
                raise OverflowError("past the last representable date")
            last_day = calendar.monthrange(year, month0 + 1)[1]
            run_date = date(year, month0 + 1, min(config.day_of_month, last_day))
            if run_date >= start:
                yield run_date
            k += 1
