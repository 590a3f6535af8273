"""When each recipient of a run gets the message, and why (docs/architecture.md, "Send times").

One function decides a recipient's send time for fan-out and for the `send-plan` preview alike, so the
plan an operator reads is the plan the engine follows.

Recipient local time (like Mailchimp's Timewarp): the campaign names a local date and wall-clock time
(the one-off instant read in the zone it was scheduled in, or the recurring config's time and zone).
Each recipient gets it when their own clock shows that time on that date. The run therefore launches
when the first zone on Earth (UTC+14) reaches it; a recipient whose moment had already passed at launch
(scheduled less than a day ahead) gets it at that time on the next day rather than at the wrong hour.

Send Time Optimization (docs/decisions/030): the window opens where the schedule would have sent (the
launch, or each recipient's local wall time) and `RunPlanner` scores a chunk of recipients at once with
campaigns.sto, so the fan-out plans a million recipients without a Python step per recipient's score.

Quiet hours (docs/decisions/060) are a mask over all of it: the STO scorer never picks an hour that starts
inside them, and any time still inside them (a fixed launch or local time, a window that is all quiet) moves
to their end, with the reason code `quiet_hours`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings

from audience import engagement as eng
from audience.selectors import engagement_prior
from campaigns import sto
from common.quiet_hours import QuietHours
from common.timerules import local_wall_time_to_utc
from common.timezones import is_valid_timezone

EARLIEST_OFFSET = timezone(timedelta(hours=14))  # Pacific/Kiritimati, the first zone to reach a wall time


def local_time_launch_at(*, local_date: date, wall: time, now: datetime) -> datetime:
    """When a recipient-local-time run must launch so the earliest zone gets it on time."""
    return max(now, datetime.combine(local_date, wall, tzinfo=EARLIEST_OFFSET))


def local_date_and_wall_time(*, campaign, occurrence: datetime) -> tuple[date, time]:
    """The local date and wall time a campaign occurrence means, in the zone it was scheduled in."""
    config = campaign.recurring_config or {}
    zone_name = config.get("time_zone") or campaign.schedule_timezone or campaign.workspace.timezone
    local = occurrence.astimezone(ZoneInfo(zone_name))
    return local.date(), local.time().replace(second=0, microsecond=0)


@dataclass(frozen=True)
class SendPolicy:
    """What of a campaign's schedule shapes per-recipient times, frozen at launch."""

    launch_at: datetime
    workspace_timezone: str
    local_date: date | None = None  # set for recipient local time
    local_wall_time: time | None = None
    sto_window_hours: int | None = None
    sto_holdout_percent: int = 0
    quiet_hours: QuietHours | None = None
    holdout_salt: int = 0  # the campaign's: each campaign holds out its own share of the audience

    @classmethod
    def for_campaign(cls, *, campaign, launch_at: datetime, occurrence: datetime | None = None) -> "SendPolicy":
        """`occurrence` is the instant the schedule named (for local time, in the scheduling zone)."""
        sto_config = campaign.send_time_optimization or {}
        local_date = wall = None
        if campaign.recipient_local_time and occurrence is not None:
            local_date, wall = local_date_and_wall_time(campaign=campaign, occurrence=occurrence)
        return cls(
            launch_at=launch_at,
            workspace_timezone=campaign.workspace.timezone,
            local_date=local_date,
            local_wall_time=wall,
            sto_window_hours=sto_config.get("window_hours"),
            sto_holdout_percent=sto_config.get("holdout_percent") or 0,
            quiet_hours=QuietHours.from_dict(campaign.quiet_hours),
            holdout_salt=campaign.pk.int if campaign.pk else 0,
        )


# Why a recipient gets their time; quiet_hours is the scheduling policy's (docs/decisions/030).
REASON_CODES = (
    "launch_time",
    "local_time",
    "own_history",
    "audience_history",
    "window_start",
    "holdout",
    "quiet_hours",
)


@dataclass(frozen=True)
class Planned:
    send_at: datetime
    reason_code: str
    reason: str


def plan_send_time(*, policy: SendPolicy, contact_timezone: str) -> Planned:
    """Where the schedule itself puts one recipient: the launch, or their local wall time. With STO this is
    where their window starts."""
    if policy.local_date is not None and policy.local_wall_time is not None:
        zone_name, own = display_zone(policy, contact_timezone)
        send_at, next_day = _local_instant(policy, zone_name)
        reason = f"recipient local time {policy.local_wall_time:%H:%M} in {zone_name}"
        reason += " (contact's timezone)" if own else " (workspace default timezone)"
        if next_day:
            reason += "; that moment had passed at launch, so the next day"
        return Planned(send_at, "local_time", reason)
    return Planned(policy.launch_at, "launch_time", "campaign launch time")


def display_zone(policy: SendPolicy, contact_timezone: str) -> tuple[str, bool]:
    """The zone a recipient's times are read in: their own when valid, else the workspace's."""
    own = bool(contact_timezone) and is_valid_timezone(contact_timezone)
    return (contact_timezone if own else policy.workspace_timezone), own


def recipient_zone(*, policy: SendPolicy, contact_timezone: str) -> str:
    """The zone a recipient's wall-clock rules are read in: theirs, else the workspace's."""
    return display_zone(policy, contact_timezone)[0]


QUIET_HOURS_REASON = "moved out of quiet hours"


def apply_quiet_hours(*, policy: SendPolicy, planned: Planned, contact_timezone: str) -> Planned:
    """A send time inside the quiet hours (in the recipient's zone) moves to their end."""
    quiet = policy.quiet_hours
    if quiet is None:
        return planned
    zone_name = recipient_zone(policy=policy, contact_timezone=contact_timezone)
    release = quiet.end_after(planned.send_at, ZoneInfo(zone_name))
    if release is None:
        return planned
    window = f"{quiet.start:%H:%M}-{quiet.end:%H:%M}"
    return Planned(release, "quiet_hours", f"{planned.reason}; {QUIET_HOURS_REASON} {window} in {zone_name}")


def plan_recipient(*, policy: SendPolicy, contact_timezone: str) -> Planned:
    """Without STO, one recipient's time with every policy applied: the schedule's, out of quiet hours."""
    start = plan_send_time(policy=policy, contact_timezone=contact_timezone)
    return apply_quiet_hours(policy=policy, planned=start, contact_timezone=contact_timezone)


def _local_instant(policy: SendPolicy, zone_name: str) -> tuple[datetime, bool]:
    zone = ZoneInfo(zone_name)
    wall = datetime.combine(policy.local_date, policy.local_wall_time)
    instant = local_wall_time_to_utc(local=wall, zone=zone, on_gap="shift")
    if instant >= policy.launch_at:
        return instant, False
    wall += timedelta(days=1)
    return local_wall_time_to_utc(local=wall, zone=zone, on_gap="shift"), True


# The columns RunPlanner.plan reads, in this order, from the recipients' queryset (profile may be absent).
RECIPIENT_COLUMNS = (
    "id",
    "email",
    "timezone",
    "engagement__engagement",
    "engagement__exposure",
    "engagement__decayed_to",
    "engagement__opens",
    "engagement__clicks",
)
PLAIN_COLUMNS = RECIPIENT_COLUMNS[:3]
# Recipients read and scored at once with STO: a profile is 1.3 KB as read, a (rows, 168) float64 matrix
# another 1.3 KB a row, and the scorer makes a few; so this sets the fan-out's and the preview's memory.
STO_CHUNK = 1000
# Rows the scorer takes at once: its float64 copies and temporaries of (rows, 168) are the fan-out's
# largest allocations, so fewer rows keep the worker's peak down (bench/run fanout) at a few more calls.
_SCORE_ROWS = 250


@dataclass
class RecipientChunk:
    """Recipients of a run as columns, in the run's order: what the STO planner reads. The fan-out fills it
    from PostgreSQL with a binary cursor straight into arrays (campaigns.selectors.campaign_recipient_chunks);
    `from_rows` builds the same from ORM rows (SQLite, the preview's sample)."""

    ids: bytes  # 16 bytes per recipient: the contact's UUID
    zones: list[str]  # the distinct contact timezones of the chunk ("" for none)
    zone_of: np.ndarray  # (n,) index into `zones`
    engagement: np.ndarray  # (n, 168) float32, zeros without a profile
    exposure: np.ndarray  # (n, 168) float32
    decayed_to_us: np.ndarray  # (n,) int64 microseconds since the epoch; 0 without a profile
    opens: np.ndarray  # (n,) int64
    clicks: np.ndarray  # (n,) int64
    emails: list[str] | None = None  # only from ORM rows

    def __len__(self) -> int:
        return len(self.opens)

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> "RecipientChunk":
        """From rows of RECIPIENT_COLUMNS."""
        ids, emails, zones, engagement, exposure, decayed_to, opens, clicks = (list(c) for c in zip(*rows, strict=True))
        index: dict[str, int] = {}
        zone_of = np.array([index.setdefault(z or "", len(index)) for z in zones], dtype=np.int64)
        return cls(
            ids=b"".join(i.bytes for i in ids),
            zones=list(index),
            zone_of=zone_of,
            engagement=eng.matrix(engagement).astype(eng.DTYPE),
            exposure=eng.matrix(exposure).astype(eng.DTYPE),
            decayed_to_us=np.array([eng.epoch_us(d) for d in decayed_to], dtype=np.int64),
            opens=np.array([o or 0 for o in opens], dtype=np.int64),
            clicks=np.array([c or 0 for c in clicks], dtype=np.int64),
            emails=emails,
        )


@dataclass(frozen=True)
class Reason:
    """Why a group of recipients gets its time. The text of one recipient is `head`, then their own
    history ("41 opens, 3 clicks") when `history`, then `tail`, cut to 200 characters: `text` here, and the
    same in SQL where the fan-out writes it (delivery.services.DeliveryWriter.write_plan)."""

    code: str
    head: str
    history: bool
    tail: str

    def text(self, opens: int, clicks: int) -> str:
        middle = ""
        if self.history:
            middle = f"{opens} opens" + (f", {clicks} clicks" if clicks else "")
        return (self.head + middle + self.tail)[:200]


@dataclass
class ChunkPlan:
    """A planned chunk: per recipient the send time and an index into `reasons` (the planner's table)."""

    ids: bytes
    send_at: np.ndarray  # (n,) int64 epoch seconds
    reason: np.ndarray  # (n,) int64 index into reasons
    opens: np.ndarray
    clicks: np.ndarray
    reasons: list[Reason]

    def __len__(self) -> int:
        return len(self.send_at)

    @classmethod
    def join(cls, plans: list["ChunkPlan"]) -> "ChunkPlan":
        if len(plans) == 1:
            return plans[0]
        return cls(
            ids=b"".join(p.ids for p in plans),
            send_at=np.concatenate([p.send_at for p in plans]),
            reason=np.concatenate([p.reason for p in plans]),
            opens=np.concatenate([p.opens for p in plans]),
            clicks=np.concatenate([p.clicks for p in plans]),
            reasons=plans[0].reasons,
        )

    def entry(self, i: int) -> tuple[datetime, str, str]:
        """One recipient's (send_at, reason_code, reason)."""
        reason = self.reasons[int(self.reason[i])]
        when = datetime.fromtimestamp(int(self.send_at[i]), UTC)
        return when, reason.code, reason.text(int(self.opens[i]), int(self.clicks[i]))


_QUIET, _NOT_QUIET = 1, 0
_HOUR_SPAN = 1 << 20  # hours after the planner's base hour a chosen hour may lie (a reason key's field)


class RunPlanner:
    """Plans chunks of recipients of one run. Rows are `RECIPIENT_COLUMNS` with STO, `PLAIN_COLUMNS`
    without; with STO, `choose_holdout` sees every recipient's id first. `plan` returns (contact_id, email,
    send_at, reason_code, reason) per row, in the rows' order; with STO `plan_chunk` plans columns
    (RecipientChunk) without a Python step per recipient. Neither depends on the order rows come in."""

    def __init__(self, *, policy: SendPolicy, workspace):
        self.policy = policy
        # Profiles are decayed to the launch, not to the clock: the preview and the fan-out then score
        # the same numbers, whenever each runs.
        self.now = policy.launch_at
        self.sto = bool(policy.sto_window_hours)
        self.columns = RECIPIENT_COLUMNS if self.sto else PLAIN_COLUMNS
        self._holdout_chosen = not self.sto
        self._holdout_max: int | None = None
        self.prior = engagement_prior(workspace=workspace, now=self.now) if self.sto else None
        self._windows: dict[str, tuple[Planned, str]] = {}  # per zone: the window start and display zone
        self._fixed: dict[str, Planned] = {}  # per zone without STO: the send time, out of quiet hours
        # Per zone seen with STO, by position: its name, window start (epoch s), quiet hours of the window.
        self._zone_pos: dict[str, int] = {}
        self._zone_names: list[str] = []
        self._zone_starts: list[int] = []
        self._zone_masks: list[np.ndarray] = []
        self._zone_quiet: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._zone_priors: list[np.ndarray] = []  # the local-time prior as this zone's UTC buckets
        self._base_hour = int(self.now.timestamp()) // 3600 - 72
        self.reasons: list[Reason] = []
        self._reason_pos: dict[int, int] = {}

    def window(self, zone: str) -> tuple[Planned, str]:
        if zone not in self._windows:
            start = plan_send_time(policy=self.policy, contact_timezone=zone)
            self._windows[zone] = (start, display_zone(self.policy, zone)[0])
        return self._windows[zone]

    def fixed(self, zone: str) -> Planned:
        """Without STO: the one send time of this zone's recipients."""
        if zone not in self._fixed:
            self._fixed[zone] = plan_recipient(policy=self.policy, contact_timezone=zone)
        return self._fixed[zone]

    def choose_holdout(self, ids: Iterable[bytes]) -> None:
        """Decide the holdout from every recipient's id (chunks of 16-byte ids, in any order): exactly
        floor(N * holdout_percent / 100) of them, by a hash of id and campaign, so the choice depends on
        neither the order the recipients are read in nor the chunks. Called before planning when the
        campaign has a holdout; the fan-out and the preview read the same recipients, so they agree."""
        if not self.sto or not self.policy.sto_holdout_percent:
            self._holdout_chosen = True
            return
        keys = [sto.holdout_keys(chunk, len(chunk) // 16, self.policy.holdout_salt) for chunk in ids]
        all_keys = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
        self._holdout_max = sto.holdout_threshold(all_keys, self.policy.sto_holdout_percent)
        self._holdout_chosen = True

    def plan(self, rows: list[tuple]) -> list[tuple]:
        if not self.sto:
            out = []
            for contact_id, email, zone in rows:
                chosen = self.fixed(zone or "")
                out.append((contact_id, email, chosen.send_at, chosen.reason_code, chosen.reason[:200]))
            return out
        if not rows:
            return []
        chunk = RecipientChunk.from_rows(rows)
        planned = self.plan_chunk(chunk)
        return [(row[0], row[1], *planned.entry(i)) for i, row in enumerate(rows)]

    # --- STO, by columns ---------------------------------------------------------------------------------

    def _zone(self, zone: str) -> int:
        """This zone's position in the planner's per-zone tables, filling them the first time it is seen."""
        pos = self._zone_pos.get(zone)
        if pos is not None:
            return pos
        start, zone_name = self.window(zone)
        hours = self.policy.sto_window_hours
        self._zone_pos[zone] = pos = len(self._zone_names)
        self._zone_names.append(zone)
        self._zone_starts.append(int(start.send_at.timestamp()))
        self._zone_priors.append(eng.utc_prior(self.prior, eng.utc_offset_hours(zone_name, start.send_at)))
        quiet = self.policy.quiet_hours
        if quiet is not None:
            tz = ZoneInfo(zone_name)
            # The hours of the window that start inside the quiet hours: the scorer never picks them.
            self._zone_masks.append(
                np.array([quiet.end_after(start.send_at + timedelta(hours=h), tz) is not None for h in range(hours)])
            )
            self._zone_quiet.append(_quiet_intervals(quiet, tz, start.send_at, hours))
        return pos

    def plan_chunk(self, chunk: RecipientChunk) -> ChunkPlan:
        n = len(chunk)
        zpos = (
            np.array([self._zone(z) for z in chunk.zones], dtype=np.int64)[chunk.zone_of]
            if n
            else np.zeros(0, np.int64)
        )
        starts = np.array(self._zone_starts, dtype=np.int64)[zpos] if n else np.zeros(0, np.int64)
        now_us = eng.epoch_us(self.now)
        ages = np.where(chunk.decayed_to_us > 0, (now_us - chunk.decayed_to_us) / 1e6, 0.0)
        factors = eng.decay(ages)
        jitter = sto.jitter_of(chunk.ids, n)
        if not self._holdout_chosen:
            raise RuntimeError("choose_holdout() must see the recipients before plan_chunk() plans them")
        holdout = None
        if self._holdout_max is not None:
            holdout = sto.holdout_keys(chunk.ids, n, self.policy.holdout_salt) <= np.uint64(self._holdout_max)
        masks = np.stack(self._zone_masks) if self.policy.quiet_hours is not None and n else None
        priors = np.stack(self._zone_priors) if n else None
        send_at = np.empty(n, dtype=np.int64)
        code = np.empty(n, dtype=np.int64)
        for s in range(0, n, _SCORE_ROWS):
            part = slice(s, s + _SCORE_ROWS)
            counts = eng.exposure_corrected(
                chunk.engagement[part].astype(np.float64), chunk.exposure[part].astype(np.float64)
            )
            counts *= factors[part, None]
            plan = sto.score(
                counts=counts,
                prior=priors,
                prior_of=zpos[part],
                prior_strength=settings.STO_PRIOR_STRENGTH,
                day_pooling=settings.STO_DAY_POOLING,
                starts=starts[part],
                window_hours=self.policy.sto_window_hours,
                jitter=jitter[part],
                holdout=holdout[part] if holdout is not None else None,
                excluded=masks[zpos[part]] if masks is not None else None,
            )
            send_at[part], code[part] = plan.send_at, plan.code
        # The chosen hour names the reason; taken before the quiet-hours move, which keeps the hour's words.
        hour = np.where(code <= sto.AUDIENCE_HISTORY, send_at // 3600 - self._base_hour, 0)
        quiet = np.zeros(n, dtype=np.int64)
        if self.policy.quiet_hours is not None:
            # Jitter may carry a time past a quiet start inside its hour, or the whole window was quiet.
            release = self._quiet_release(zpos, send_at)
            quiet = (release > 0).astype(np.int64)
            send_at = np.where(release > 0, release, send_at)
        keys = ((zpos * _HOUR_SPAN + hour) * 4 + code) * 2 + quiet
        unique, inverse = np.unique(keys, return_inverse=True)
        table = np.array([self._reason_index(k) for k in unique.tolist()], dtype=np.int64)
        return ChunkPlan(
            ids=chunk.ids,
            send_at=send_at,
            reason=table[inverse.reshape(-1)] if n else np.zeros(0, np.int64),
            opens=chunk.opens,
            clicks=chunk.clicks,
            reasons=self.reasons,
        )

    def _quiet_release(self, zpos: np.ndarray, send_at: np.ndarray) -> np.ndarray:
        """Per recipient the end of the quiet hours their time falls in (epoch s), 0 outside them. One sorted
        search per zone; a time in quiet hours that a DST change crosses is asked of QuietHours itself."""
        release = np.zeros(len(send_at), dtype=np.int64)
        quiet = self.policy.quiet_hours
        for pos in np.unique(zpos).tolist():
            rows = np.flatnonzero(zpos == pos)
            starts, ends, crossed = self._zone_quiet[pos]
            times = send_at[rows]
            i = np.searchsorted(starts, times, side="right") - 1
            inside = (i >= 0) & (times < ends[np.maximum(i, 0)])
            release[rows] = np.where(inside, ends[np.maximum(i, 0)], 0)
            odd = rows[inside & crossed[np.maximum(i, 0)]]
            if len(odd):
                tz = ZoneInfo(self.window(self._zone_names[pos])[1])
                for r in odd.tolist():
                    end = quiet.end_after(datetime.fromtimestamp(int(send_at[r]), UTC), tz)
                    release[r] = int(end.timestamp()) if end is not None else 0
        return release

    def _reason_index(self, key: int) -> int:
        if key not in self._reason_pos:
            rest, quiet = divmod(key, 2)
            rest, code = divmod(rest, 4)
            pos, hour = divmod(rest, _HOUR_SPAN)
            zone = self._zone_names[pos]
            start, zone_name = self.window(zone)
            chosen = datetime.fromtimestamp((hour + self._base_hour) * 3600, UTC)
            reason = self._describe(code, start, zone_name, chosen)
            if quiet == _QUIET:
                q = self.policy.quiet_hours
                window = f"{q.start:%H:%M}-{q.end:%H:%M}"
                reason = Reason(
                    "quiet_hours",
                    reason.head,
                    reason.history,
                    f"{reason.tail}; {QUIET_HOURS_REASON} {window} in {zone_name}",
                )
            self._reason_pos[key] = len(self.reasons)
            self.reasons.append(reason)
        return self._reason_pos[key]

    def _describe(self, code: int, start: Planned, zone_name: str, hour: datetime) -> Reason:
        window = f"{self.policy.sto_window_hours}h window from {_local(start.send_at, zone_name)} {zone_name}"
        best = f"best {_local(hour, zone_name)} {zone_name}"
        if code == sto.OWN_HISTORY:
            return Reason("own_history", "own history: ", True, f", {best} ({window})")
        if code == sto.AUDIENCE_HISTORY:
            return Reason("audience_history", f"audience history (no history of its own), {best} ({window})", False, "")
        if code == sto.HOLDOUT:
            return Reason("holdout", f"holdout: window start, to measure the uplift ({window})", False, "")
        return Reason("window_start", f"no open history in the audience: window start ({window})", False, "")


def _quiet_intervals(
    quiet: QuietHours, zone: ZoneInfo, window_start: datetime, hours: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The quiet hours around one zone's window as UTC intervals [start, end) in epoch seconds, and for each
    whether a UTC-offset change falls inside it (there the wall clock repeats or skips, and
    QuietHours.end_after answers per instant)."""
    first = window_start.astimezone(zone).date() - timedelta(days=2)
    starts, ends, crossed = [], [], []
    for day in range(hours // 24 + 5):
        date_ = first + timedelta(days=day)
        s = local_wall_time_to_utc(local=datetime.combine(date_, quiet.start), zone=zone, on_gap="shift")
        end_date = date_ if quiet.start < quiet.end else date_ + timedelta(days=1)
        e = local_wall_time_to_utc(local=datetime.combine(end_date, quiet.end), zone=zone, on_gap="shift")
        starts.append(int(s.timestamp()))
        ends.append(int(e.timestamp()))
        crossed.append(s.astimezone(zone).utcoffset() != e.astimezone(zone).utcoffset())
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64), np.array(crossed, dtype=bool)


def _local(instant: datetime, zone_name: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone_name)):%a %H:%M}"
