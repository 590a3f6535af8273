"""The Send Time Optimization scorer (docs/decisions/030): for a chunk of recipients at once, the hour of each
one's window that their engagement profile scores best. Pure numpy, no database: the fan-out and the
send-plan preview feed it the same arrays, so the plan an operator reads is what the engine writes.

The score of an hour of week h for a contact with (decayed, exposure-corrected) counts c and evidence
n = sum(c) is the posterior mean of a Dirichlet with the audience's profile P (normalised) as its base:
(c[h] + a * P[h]) / (n + a). With two opens the prior dominates; with two hundred the contact's own.
Before that, part of each hour's evidence is shared with the same hour on the other days (`pooled`).
"""

from dataclasses import dataclass

import numpy as np

from audience.engagement import HOURS_OF_WEEK

OWN_HISTORY, AUDIENCE_HISTORY, WINDOW_START, HOLDOUT = 0, 1, 2, 3
CODES = {
    OWN_HISTORY: "own_history",
    AUDIENCE_HISTORY: "audience_history",
    WINDOW_START: "window_start",
    HOLDOUT: "holdout",
}
# 1970-01-01 was a Thursday: hour 0 of the epoch is bucket 3 * 24 of the Monday-based week.
EPOCH_BUCKET = 72


def bucket_of(epoch_seconds: np.ndarray) -> np.ndarray:
    return (np.floor_divide(epoch_seconds, 3600).astype(np.int64) + EPOCH_BUCKET) % HOURS_OF_WEEK


def pooled(counts: np.ndarray, day_pooling: float) -> np.ndarray:
    """Share a part of each hour's evidence with the same hour of the other six days, keeping the total.
    Histories cluster on the days we used to send; a habit at 08:00 on Tuesdays says something about 08:00
    on a Monday too, and without pooling a Monday window would see no history at all."""
    if not day_pooling:
        return counts
    by_day = counts.reshape(*counts.shape[:-1], 7, 24)
    daily = by_day.sum(axis=-2, keepdims=True) / 7.0
    return ((1.0 - day_pooling) * by_day + day_pooling * daily).reshape(counts.shape)


def normalised(profile: np.ndarray) -> np.ndarray:
    """Each profile (the last axis) scaled to sum to one; all zeros stays all zeros."""
    total = profile.sum(axis=-1, keepdims=True)
    return np.divide(profile, total, out=np.zeros_like(profile, dtype=np.float64), where=total > 0)


@dataclass
class Plan:
    send_at: np.ndarray  # epoch seconds, int64
    code: np.ndarray  # one of the codes above
    bucket: np.ndarray  # hour of week chosen (for the reason)
    evidence: np.ndarray  # n, the contact's weighted, decayed engagement


def score(
    *,
    counts: np.ndarray,
    prior: np.ndarray,
    prior_strength: float,
    starts: np.ndarray,
    window_hours: int,
    jitter: np.ndarray,
    holdout: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
    day_pooling: float = 0.0,
    prior_of: np.ndarray | None = None,
) -> Plan:
    """Plan one chunk.

    counts: (n, 168) engagement per contact, already decayed to now and corrected for exposure.
    prior: (168,) or (n, 168) the audience's engagement in UTC buckets, any scale (zeros: no audience
    history); per contact when it is kept in local time and moved into each contact's zone. Or (z, 168), one
    per zone, with `prior_of` (n,) naming each contact's row.
    starts: (n,) epoch seconds where each contact's window starts (their own zone's wall time, or not).
    jitter: (n,) in [0, 1): where in its hour a contact goes, stable per contact.
    holdout: (n,) bool: these get the window start, so the uplift can be measured.
    excluded: (n, window_hours) or (window_hours,) bool: hours of the window nobody may get mail in (quiet
    hours); a contact whose whole window is excluded gets its start, for the caller to move.

    The posterior of an hour is (pooled counts + strength * prior share) / (evidence + strength); only the
    window's hours are computed (a 24 h window is a seventh of the week), and the denominator, the same for
    every hour of a contact, is left out: it changes no contact's order of hours, nor which are above zero.
    """
    n = counts.shape[0]
    starts = starts.astype(np.int64)
    offsets = np.arange(window_hours, dtype=np.int64) * 3600
    slots = starts[:, None] + offsets[None, :]  # (n, W) each hour's start
    buckets = bucket_of(slots)
    evidence = counts.sum(axis=1)  # pooling keeps each contact's total
    window = np.take_along_axis(counts, buckets, axis=1)
    if day_pooling:
        daily = counts.reshape(n, 7, 24).sum(axis=1) / 7.0
        window = (1.0 - day_pooling) * window + day_pooling * np.take_along_axis(daily, buckets % 24, axis=1)
    p = normalised(pooled(prior, day_pooling))
    if prior_of is not None:
        shares = p[prior_of[:, None], buckets]
    elif p.ndim == 1:
        shares = p[buckets]
    else:
        shares = np.take_along_axis(p, buckets, axis=1)
    scores = window + prior_strength * shares
    if excluded is not None:
        scores = np.where(np.broadcast_to(excluded, scores.shape), -1.0, scores)
    best = np.argmax(scores, axis=1)  # ties go to the earliest hour
    informed = scores[np.arange(n), best] > 0

    code = np.where(evidence > 0, OWN_HISTORY, AUDIENCE_HISTORY)
    code = np.where(informed, code, WINDOW_START)
    if holdout is not None:
        code = np.where(holdout, HOLDOUT, code)
    chosen = code <= AUDIENCE_HISTORY
    # Inside the chosen hour, never past the window's end: the last hour ends at start + W hours.
    spread = np.minimum(np.floor(jitter * 3600).astype(np.int64), 3599)
    send_at = np.where(chosen, slots[np.arange(n), best] + spread, starts)
    bucket = np.where(chosen, buckets[np.arange(n), best], buckets[:, 0])
    return Plan(send_at=send_at, code=code, bucket=bucket, evidence=evidence)


def holdout_keys(keys: bytes, count: int, salt: int) -> np.ndarray:
    """A 64-bit number per 16-byte key (a contact's UUID), the same for one campaign (`salt`) every time
    and unrelated to the jitter: the contacts with the smallest are the campaign's holdout."""
    if not count:
        return np.zeros(0, dtype=np.uint64)
    halves = np.frombuffer(keys, dtype="<u8").reshape(count, 2)
    with np.errstate(over="ignore"):
        x = (halves[:, 0] ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)) * np.uint64(0xD6E8FEB86659FD93)
        x ^= halves[:, 1] + np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(32)
        x *= np.uint64(0xD6E8FEB86659FD93)
        x ^= x >> np.uint64(32)
        x *= np.uint64(0xD6E8FEB86659FD93)
        x ^= x >> np.uint64(32)
    return x


def holdout_threshold(keys: np.ndarray, percent: int) -> int | None:
    """The largest key of the holdout: exactly floor(N * percent / 100) of the N keys are at or below it
    (keys of distinct contacts differ: a 64-bit hash). None: nobody is held out."""
    k = len(keys) * percent // 100
    if k <= 0:
        return None
    return int(np.partition(keys, k - 1)[k - 1])


def jitter_of(keys: bytes, count: int) -> np.ndarray:
    """A number in [0, 1) per 16-byte key (a contact's UUID), the same every time: a splitmix64 finaliser
    over the key's two halves, so contacts with similar ids still land far apart in the hour."""
    if not count:
        return np.zeros(0)
    halves = np.frombuffer(keys, dtype="<u8").reshape(count, 2)
    with np.errstate(over="ignore"):
        x = halves[:, 0] ^ (halves[:, 1] * np.uint64(0x9E3779B97F4A7C15))
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
