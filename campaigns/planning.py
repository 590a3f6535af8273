"""When each recipient of a run gets the message, and why (docs/architecture.md, "Send times").

One function decides a recipient's send time for fan-out and for the `send-plan` preview alike, so the
plan an operator reads is the plan the engine follows.

Recipient local time (like Mailchimp's Timewarp): the campaign names a local date and wall-clock time
(the one-off instant read in the zone it was scheduled in, or the recurring config's time and zone).
Each recipient gets it when their own clock shows that time on that date. The run therefore launches
when the first zone on Earth (UTC+14) reaches it; a recipient whose moment had already passed at launch
(scheduled less than a day ahead) gets it at that time on the next day rather than at the wrong hour.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

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
    quiet_hours: QuietHours | None = None

    @classmethod
    def for_campaign(cls, *, campaign, launch_at: datetime, occurrence: datetime | None = None) -> "SendPolicy":
        """`occurrence` is the instant the schedule named (for local time, in the scheduling zone)."""
        sto = campaign.send_time_optimization or {}
        local_date = wall = None
        if campaign.recipient_local_time and occurrence is not None:
            local_date, wall = local_date_and_wall_time(campaign=campaign, occurrence=occurrence)
        return cls(
            launch_at=launch_at,
            workspace_timezone=campaign.workspace.timezone,
            local_date=local_date,
            local_wall_time=wall,
            sto_window_hours=sto.get("window_hours"),
            quiet_hours=QuietHours.from_dict(campaign.quiet_hours),
        )


def plan_send_time(*, policy: SendPolicy, contact_timezone: str) -> tuple[datetime, str]:
    """(send_at, reason) for one recipient."""
    if policy.sto_window_hours:
        # The STO scorer plugs in here; with no open history the answer is the window start.
        return policy.launch_at, (
            f"send time optimization ({policy.sto_window_hours}h window): no open history, window start"
        )
    if policy.local_date is not None and policy.local_wall_time is not None:
        own = bool(contact_timezone) and is_valid_timezone(contact_timezone)
        zone_name = contact_timezone if own else policy.workspace_timezone
        send_at, next_day = _local_instant(policy, zone_name)
        reason = f"recipient local time {policy.local_wall_time:%H:%M} in {zone_name}"
        reason += " (contact's timezone)" if own else " (workspace default timezone)"
        if next_day:
            reason += "; that moment had passed at launch, so the next day"
        return send_at, reason
    return policy.launch_at, "campaign launch time"


def _local_instant(policy: SendPolicy, zone_name: str) -> tuple[datetime, bool]:
    zone = ZoneInfo(zone_name)
    wall = datetime.combine(policy.local_date, policy.local_wall_time)
    instant = local_wall_time_to_utc(local=wall, zone=zone, on_gap="shift")
    if instant >= policy.launch_at:
        return instant, False
    wall += timedelta(days=1)
    return local_wall_time_to_utc(local=wall, zone=zone, on_gap="shift"), True


# Why a recipient gets its time, as a code a client can match on (send-plan's `reason_code`).
REASON_LAUNCH, REASON_LOCAL, REASON_STO, REASON_QUIET = (
    "launch_time",
    "recipient_local_time",
    "send_time_optimization",
    "quiet_hours",
)
QUIET_HOURS_REASON = "moved out of quiet hours"


@dataclass(frozen=True)
class PlannedSend:
    send_at: datetime
    reason: str
    reason_code: str


def recipient_zone(*, policy: SendPolicy, contact_timezone: str) -> str:
    """The zone a recipient's wall-clock rules are read in: theirs, else the workspace's."""
    if contact_timezone and is_valid_timezone(contact_timezone):
        return contact_timezone
    return policy.workspace_timezone


def plan_recipient(*, policy: SendPolicy, contact_timezone: str) -> PlannedSend:
    """The send time of one recipient with every policy applied: the time plan_send_time (or a scorer
    plugged into it) chooses, then moved out of the campaign's quiet hours (a mask applied after the
    choice, so any scorer gets it; a scorer may also take `policy.quiet_hours.excluded_hours()` to avoid
    choosing those hours at all)."""
    send_at, reason = plan_send_time(policy=policy, contact_timezone=contact_timezone)
    if policy.sto_window_hours:
        code = REASON_STO
    elif policy.local_date is not None:
        code = REASON_LOCAL
    else:
        code = REASON_LAUNCH
    return apply_quiet_hours(
        policy=policy, planned=PlannedSend(send_at, reason, code), contact_timezone=contact_timezone
    )


def apply_quiet_hours(*, policy: SendPolicy, planned: PlannedSend, contact_timezone: str) -> PlannedSend:
    """A send time inside the quiet hours (in the recipient's zone) moves to their end."""
    quiet = policy.quiet_hours
    if quiet is None:
        return planned
    zone_name = recipient_zone(policy=policy, contact_timezone=contact_timezone)
    release = quiet.end_after(planned.send_at, ZoneInfo(zone_name))
    if release is None:
        return planned
    window = f"{quiet.start:%H:%M}-{quiet.end:%H:%M}"
    reason = f"{planned.reason}; {QUIET_HOURS_REASON} {window} in {zone_name}"
    return PlannedSend(release, reason, REASON_QUIET)


def reason_code_of(reason: str) -> str:
    """The code of a stored reason (a delivery keeps the sentence only)."""
    if QUIET_HOURS_REASON in reason:
        return REASON_QUIET
    if reason.startswith("send time optimization"):
        return REASON_STO
    if reason.startswith("recipient local time"):
        return REASON_LOCAL
    return REASON_LAUNCH
