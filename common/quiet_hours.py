"""Quiet hours: a daily wall-clock window in a recipient's zone in which no mail is handed off
(docs/decisions/060). Pure functions, shared by planning (which moves a send time out of the window) and the
send path (which holds a recipient whose moment falls in it), so both agree on what "inside" means.

A window is `{"start": "21:00", "end": "08:00"}`: it starts at `start` local time and ends at the next `end`,
so a start later than the end wraps past midnight. Both are read on the local calendar, so the UTC
instants move with DST: 08:00 in New York is 13:00Z before the March change and 12:00Z after it. An end
inside a spring-forward gap moves to the first valid instant after the gap (common.timerules).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from common.errors import ValidationError
from common.timerules import local_wall_time_to_utc

_HH_MM = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}

    @classmethod
    def from_dict(cls, data: dict | None) -> QuietHours | None:
        """Stored value (already validated) or None."""
        if not data:
            return None
        return cls(start=_wall(data["start"]), end=_wall(data["end"]))

    def contains_wall(self, wall: time) -> bool:
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def end_after(self, instant: datetime, zone: ZoneInfo) -> datetime | None:
        """The instant the window that holds `instant` ends, in `zone`; None when `instant` is outside it."""
        local = instant.astimezone(zone)
        wall = local.time().replace(tzinfo=None)
        if not self.contains_wall(wall):
            return None
        end_date = local.date()
        if wall >= self.end:  # before midnight in a window that wraps: it ends tomorrow
            end_date += timedelta(days=1)
        end = local_wall_time_to_utc(local=datetime.combine(end_date, self.end), zone=zone, on_gap="shift")
        # Guards a fall-back repeat of the end hour: never answer an instant at or before the one asked.
        return end if end > instant else None

    def next_start_after(self, instant: datetime, zone: ZoneInfo) -> datetime | None:
        """When the next window begins after `instant` (None if `instant` is inside one)."""
        if self.end_after(instant, zone) is not None:
            return None
        local = instant.astimezone(zone)
        for days in (0, 1):
            day = local.date() + timedelta(days=days)
            start = local_wall_time_to_utc(local=datetime.combine(day, self.start), zone=zone, on_gap="shift")
            if start > instant:
                return start
        return None

    def excluded_hours(self) -> list[int]:
        """Local hours of the day that start inside the window: what an hour scorer (STO) must not pick."""
        return [hour for hour in range(24) if self.contains_wall(time(hour))]


def _wall(value: str) -> time:
    return time(int(value[:2]), int(value[3:]))


def parse_quiet_hours(value: Any, *, field: str = "quiet_hours") -> QuietHours | None:
    """A client's quiet hours object (or null). A 400 naming the field otherwise."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError.for_field(field, f'{field} must be an object, e.g. {{"start": "21:00", "end": "08:00"}}.')
    problems: dict[str, list[str]] = {
        f"{field}.{k}": ["Unknown field."] for k in sorted(map(str, value)) if k not in ("start", "end")
    }
    for key in ("start", "end"):
        raw = value.get(key)
        if raw is None:
            problems[f"{field}.{key}"] = ['This field is required (24-hour "HH:MM", e.g. "21:00").']
        elif not isinstance(raw, str) or not _HH_MM.fullmatch(raw):
            problems[f"{field}.{key}"] = [f'{key} must be 24-hour "HH:MM" from "00:00" to "23:59".']
    if not problems and value["start"] == value["end"]:
        problems[f"{field}.end"] = ["end must differ from start (a window of no length, or of the whole day)."]
    if problems:
        raise ValidationError(details=problems)
    return QuietHours(start=_wall(value["start"]), end=_wall(value["end"]))


def quiet_hours_release(*, quiet: QuietHours | None, instant: datetime, zone_name: str) -> datetime | None:
    """When a send due at `instant` in `zone_name` may go: None if it may go at `instant`."""
    if quiet is None:
        return None
    return quiet.end_after(instant, ZoneInfo(zone_name))
