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
SCORE_SLICE = 2000


class RunPlanner:
    """Plans chunks of recipients of one run. Rows are `RECIPIENT_COLUMNS` with STO, `PLAIN_COLUMNS`
    without; `position` is the first row's index in the run's order (by contact id), which decides the
    holdout. Returns (contact_id, email, send_at, reason_code, reason) per row, in the rows' order."""

    def __init__(self, *, policy: SendPolicy, workspace):
        self.policy = policy
        # Profiles are decayed to the launch, not to the clock: the preview and the fan-out then score
        # the same numbers, whenever each runs.
        self.now = policy.launch_at
        self.sto = bool(policy.sto_window_hours)
        self.columns = RECIPIENT_COLUMNS if self.sto else PLAIN_COLUMNS
        # By contact id with STO: the holdout is chosen by position in this order, so the send-plan preview
        # and a fan-out run again after a crash pick the same recipients.
        self.order = ("id",) if self.sto else ()
        self.prior = engagement_prior(workspace=workspace, now=self.now) if self.sto else None
        self._windows: dict[str, tuple[Planned, str]] = {}  # per zone: the window start and display zone
        self._fixed: dict[str, Planned] = {}  # per zone without STO: the send time, out of quiet hours
        self._quiet_masks: dict[str, np.ndarray] = {}  # per zone with STO: the window's hours that are quiet
        self._reasons: dict[tuple, str] = {}

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

    def quiet_mask(self, zone: str) -> np.ndarray:
        """(window_hours,) bool: the hours of this zone's STO window that start inside the quiet hours."""
        if zone not in self._quiet_masks:
            start, zone_name = self.window(zone)
            quiet, tz = self.policy.quiet_hours, ZoneInfo(zone_name)
            hours = self.policy.sto_window_hours
            self._quiet_masks[zone] = np.array(
                [quiet.end_after(start.send_at + timedelta(hours=h), tz) is not None for h in range(hours)], dtype=bool
            )
        return self._quiet_masks[zone]

    def plan(self, rows: list[tuple], *, position: int = 0) -> list[tuple]:
        if not self.sto:
            out = []
            for contact_id, email, zone in rows:
                chosen = self.fixed(zone or "")
                out.append((contact_id, email, chosen.send_at, chosen.reason_code, chosen.reason[:200]))
            return out
        return self._plan_sto(rows, position)

    def _plan_sto(self, rows: list[tuple], position: int) -> list[tuple]:
        # Scored in slices: a (rows, 168) float64 matrix is 1.3 KB a row, and the scorer makes a few.
        out = []
        for start in range(0, len(rows), SCORE_SLICE):
            out += self._score_slice(rows[start : start + SCORE_SLICE], position + start)
        return out

    def _score_slice(self, rows: list[tuple], position: int) -> list[tuple]:
        count = len(rows)
        if not count:
            return []
        ids, emails, zones, engagement, exposure, decayed_to, opens, clicks = zip(*rows, strict=True)
        windows = [self.window(zone or "") for zone in zones]
        starts = np.array([w[0].send_at.timestamp() for w in windows], dtype=np.int64)
        counts = eng.exposure_corrected(eng.matrix(engagement), eng.matrix(exposure))
        counts *= eng.decay_to(list(decayed_to), self.now)[:, None]
        plan = sto.score(
            counts=counts,
            prior=self.prior,
            prior_strength=settings.STO_PRIOR_STRENGTH,
            day_pooling=settings.STO_DAY_POOLING,
            starts=starts,
            window_hours=self.policy.sto_window_hours,
            jitter=sto.jitter_of(b"".join(i.bytes for i in ids), count),
            holdout=sto.holdout_mask(np.arange(position, position + count), self.policy.sto_holdout_percent),
            excluded=np.stack([self.quiet_mask(zone or "") for zone in zones]) if self.policy.quiet_hours else None,
        )
        send_at = plan.send_at.tolist()
        codes = plan.code.tolist()
        out = []
        for i in range(count):
            start, zone_name = windows[i]
            when = datetime.fromtimestamp(send_at[i], UTC)
            reason = self._reason(codes[i], start, zone_name, when, opens[i] or 0, clicks[i] or 0)
            chosen = Planned(when, sto.CODES[codes[i]], reason)
            if self.policy.quiet_hours is not None:
                # Jitter may carry a time past a quiet start inside its hour, or the whole window was quiet.
                chosen = apply_quiet_hours(policy=self.policy, planned=chosen, contact_timezone=zones[i] or "")
            out.append((ids[i], emails[i], chosen.send_at, chosen.reason_code, chosen.reason[:200]))
        return out

    def _reason(self, code: int, start: Planned, zone_name: str, when: datetime, opens: int, clicks: int) -> str:
        hour = when.replace(minute=0, second=0, microsecond=0)
        key = (code, start.send_at, zone_name, hour if code <= sto.AUDIENCE_HISTORY else None, opens, clicks)
        if key not in self._reasons:
            self._reasons[key] = self._describe(code, start, zone_name, hour, opens, clicks)[:200]
        return self._reasons[key]

    def _describe(self, code: int, start: Planned, zone_name: str, hour: datetime, opens: int, clicks: int) -> str:
        window = f"{self.policy.sto_window_hours}h window from {_local(start.send_at, zone_name)} {zone_name}"
        best = f"best {_local(hour, zone_name)} {zone_name}"
        if code == sto.OWN_HISTORY:
            history = f"{opens} opens" + (f", {clicks} clicks" if clicks else "")
            return f"own history: {history}, {best} ({window})"
        if code == sto.AUDIENCE_HISTORY:
            return f"audience history (no history of its own), {best} ({window})"
        if code == sto.HOLDOUT:
            return f"holdout: window start, to measure the uplift ({window})"
        return f"no open history in the audience: window start ({window})"


def _local(instant: datetime, zone_name: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone_name)):%a %H:%M}"
