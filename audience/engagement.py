"""Engagement profiles as numbers (docs/decisions/030): 168 hour-of-week buckets in UTC (Monday 00:00-00:59
is bucket 0), stored as float32 bytes so the fan-out can load a chunk of profiles into one numpy array.

A profile's vectors are decayed to its `decayed_to` instant: folding an event first decays the vector to
the event's time (or decays the event to the vector's time when it is older, as imported history is), and
readers decay the whole vector to "now" with one factor per contact. So an old habit fades in both the
shape and the amount of evidence, and the scorer leans on the prior for a contact not seen in a year.

Pure functions only: no database, so the scorer's tests can build histories by hand.
"""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings

HOURS_OF_WEEK = 168
DTYPE = np.float32
EMPTY = b""
# A stored vector's size, and a vector of zeros: what a reader takes for a missing or empty profile.
VECTOR_BYTES = HOURS_OF_WEEK * np.dtype(DTYPE).itemsize
NO_VECTOR = bytes(VECTOR_BYTES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# User agents of fetches no person made: security scanners that open every pixel and link on delivery,
# and bare fetchers. Apple Mail Privacy Protection prefetches with a bare "Mozilla/5.0" and nothing else.
# Gmail's and Yahoo's image proxies fetch when the reader opens, so they count as opens.
MACHINE_USER_AGENTS = re.compile(
    r"barracuda|mimecast|proofpoint|ppe-hosted|symantec|messagelabs|forcepoint|trend ?micro|bitdefender|"
    r"ironport|cisco|sophos|fortinet|fortiguard|zscaler|safelinks|linkscanner|avast|kaspersky|"
    r"bot\b|crawler|spider|slurp|preview|facebookexternalhit|python-requests|python-urllib|curl/|wget/|"
    r"go-http-client|java/|okhttp|axios|headless",
    re.IGNORECASE,
)
BARE_MOZILLA = re.compile(r"^\s*Mozilla/5\.0\s*$")


def epoch_us(instant: datetime | None) -> int:
    """Microseconds since the epoch (0 for none): how the planners carry `decayed_to` in arrays."""
    return (instant - _EPOCH) // _MICROSECOND if instant is not None else 0


def hour_of_week(instant: datetime) -> int:
    utc = instant.astimezone(UTC)
    return utc.weekday() * 24 + utc.hour


def utc_offset_hours(zone_name: str, at: datetime) -> int:
    """The zone's UTC offset at `at`, in whole hours (to the nearest: +05:30 counts as +6, +05:45 as +6)."""
    offset = at.astimezone(ZoneInfo(zone_name)).utcoffset().total_seconds() / 3600
    return int(np.floor(offset + 0.5))


def utc_prior(local: np.ndarray, offset_hours: int) -> np.ndarray:
    """A prior by local hour of week (audience.selectors.engagement_prior) as UTC buckets for a zone."""
    return np.roll(local, -offset_hours)


def half_life_seconds() -> float:
    return settings.STO_HALF_LIFE_DAYS * 86400.0


def decay(seconds: float | np.ndarray) -> float | np.ndarray:
    """The weight left after `seconds` (never grows: negative ages count as none)."""
    return np.power(0.5, np.maximum(seconds, 0) / half_life_seconds())


def is_machine_open(*, user_agent: str, seconds_after_handoff: float | None) -> bool:
    if seconds_after_handoff is not None and 0 <= seconds_after_handoff < settings.STO_MACHINE_OPEN_SECONDS:
        return True
    ua = user_agent or ""
    return bool(MACHINE_USER_AGENTS.search(ua) or BARE_MOZILLA.match(ua))


def weight(kind: str) -> float:
    return settings.STO_CLICK_WEIGHT if kind == "clicked" else 1.0


def vector(data: bytes | memoryview | None) -> np.ndarray:
    """A stored vector (empty bytes for none yet) as 168 float64 numbers."""
    if not data:
        return np.zeros(HOURS_OF_WEEK)
    return np.frombuffer(bytes(data), dtype=DTYPE).astype(np.float64)


def to_bytes(values: np.ndarray) -> bytes:
    if not values.any():
        return EMPTY
    return values.astype(DTYPE).tobytes()


def fold(
    data: bytes | None, decayed_to: datetime | None, *, at: datetime, bucket: int, amount: float
) -> tuple[bytes, datetime]:
    """Add `amount` in `bucket` at instant `at` to a stored vector decayed to `decayed_to`."""
    values = vector(data)
    if decayed_to is None or at >= decayed_to:
        if decayed_to is not None:
            values *= decay((at - decayed_to).total_seconds())
        values[bucket] += amount
        return to_bytes(values), at
    values[bucket] += amount * decay((decayed_to - at).total_seconds())
    return to_bytes(values), decayed_to


def matrix(rows: list[bytes | memoryview | None]) -> np.ndarray:
    """Stored vectors of many contacts as an (n, 168) float64 array, without a loop over numbers."""
    out = np.zeros((len(rows), HOURS_OF_WEEK))
    present = [i for i, data in enumerate(rows) if data]
    if present:
        joined = b"".join(bytes(rows[i]) for i in present)
        out[present] = np.frombuffer(joined, dtype=DTYPE).reshape(len(present), HOURS_OF_WEEK)
    return out


def decay_to(decayed_to: list[datetime | None], now: datetime) -> np.ndarray:
    """One factor per contact that brings its vectors from their `decayed_to` to `now`."""
    ages = np.array([(now - d).total_seconds() if d is not None else 0.0 for d in decayed_to], dtype=np.float64)
    return decay(ages)


def exposure_corrected(engagement: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Engagement per send in each hour, scaled back to the same total: the hours we happened to send in
    do not teach themselves. Rows without known sends are left as they are.

    An open comes a little after its send, so a send counts as exposure in its own hour and the next two.
    Every hour also gets the mean exposure per hour (at least one send's worth): an hour we never sent in
    does not divide by zero, and for a whole audience (thousands of sends an hour) it does not outweigh
    the hours we did send in.
    """
    if not exposure.any():
        return engagement
    # exposure + 0.5 * (exposure one hour earlier) + 0.25 * (two hours earlier), around the week, in place:
    # the fan-out runs this over every recipient's profile.
    spread = exposure.astype(np.float64, copy=True)
    spread[..., 1:] += 0.5 * exposure[..., :-1]
    spread[..., :1] += 0.5 * exposure[..., -1:]
    spread[..., 2:] += 0.25 * exposure[..., :-2]
    spread[..., :2] += 0.25 * exposure[..., -2:]
    spread += np.maximum(1.0, spread.mean(axis=-1, keepdims=True))
    rates = np.divide(engagement, spread, out=spread)
    total = engagement.sum(axis=-1, keepdims=True)
    rate_total = rates.sum(axis=-1, keepdims=True)
    scale = np.divide(total, rate_total, out=np.zeros_like(total), where=rate_total > 0)
    rates *= scale
    unsent = exposure.sum(axis=-1) <= 0
    if unsent.any():
        rates[unsent] = engagement[unsent]
    return rates
