import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Count, F
from django.utils import timezone

from accounts.models import Workspace
from audience.models import Label, Segment, normalize_email
from campaigns import errors as campaign_errors
from campaigns import scheduling
from campaigns.models import AUDIENCE_KEYS, AUDIENCE_MAX_IDS, TRACKING_KEYS, Campaign, CampaignRun, Template
from campaigns.planning import local_date_and_wall_time, local_time_launch_at
from campaigns.selectors import campaign_get, campaign_readiness
from common import errors, timerules
from common.db import atomic_or_busy, is_lock_timeout, unique_or_400
from common.quiet_hours import QuietHours, parse_quiet_hours
from common.rendering import validate_template
from common.validators import SINGLE_LINE_MESSAGE, is_single_line, single_line_problems
from delivery.content import has_body
from delivery.models import Delivery, Event
from delivery.services import deliveries_cancel, deliveries_fold_exposure, deliveries_requeue, event_record
from delivery.tasks import dispatch_due

logger = logging.getLogger(__name__)


def template_check(*, name: str, subject: str, html: str, text: str) -> None:
    """The rules of a template's content, shared by the services below and the admin form: raises
    ValidationError with every field's problems at once."""
    problems: dict[str, list[str]] = {}
    if not name.strip():
        problems["name"] = ["This field may not be blank."]
    if not is_single_line(subject):
        problems["subject"] = [SINGLE_LINE_MESSAGE]
    for field, source in (("subject", subject), ("html", html), ("text", text)):
        try:
            validate_template(source, field=field)
        except errors.ValidationError as exc:
            problems.setdefault(field, []).extend(exc.details[field])
    if not has_body(html=html, text=text):
        # A campaign using it would count as having content and then send an empty message.
        problems["non_field_errors"] = ["A template needs html, text, or both."]
    if problems:
        raise errors.ValidationError(details=problems)


def template_create(*, workspace: Workspace, name: str, subject: str = "", html: str = "", text: str = "") -> Template:
    name = name.strip()
    template_check(name=name, subject=subject, html=html, text=text)
    template = Template(workspace=workspace, name=name, subject=subject, html=html, text=text)
    return _template_save(template)


def template_update(
    *,
    workspace: Workspace,
    instance: Template,
    name: str | None = None,
    subject: str | None = None,
    html: str | None = None,
    text: str | None = None,
) -> Template:
    """Change any of the given fields (None leaves one as it is); the result is checked as a whole."""
    if instance.workspace_id != workspace.pk:
        raise errors.NotFound()
    changes = {"name": name.strip() if name is not None else None, "subject": subject, "html": html, "text": text}
    for field, value in changes.items():
        if value is not None:
            setattr(instance, field, value)
    template_check(name=instance.name, subject=instance.subject, html=instance.html, text=instance.text)
    return _template_save(instance)


def template_delete(*, workspace: Workspace, instance: Template) -> None:
    deleted, _ = Template.objects.filter(workspace=workspace, pk=instance.pk).delete()
    if not deleted:
        raise errors.NotFound()


def _template_save(template: Template) -> Template:
    with unique_or_400("name", f"A template named '{template.name}' already exists in this workspace."):
        template.save()
    return template


# --- Campaigns ------------------------------------------------------------------------------------------

CONTENT_FIELDS = ("subject", "preheader", "from_name", "from_email", "reply_to", "html", "text")


def campaign_transition():
    """The transaction of one state change of a campaign: it waits for another change of the same campaign
    (or, on SQLite, any write) at most settings.CAMPAIGN_LOCK_TIMEOUT_MS, then is a 409
    CAMPAIGN_TRANSITION_IN_PROGRESS, never a database error (docs/decisions/070)."""
    return atomic_or_busy(campaign_errors.CampaignTransitionInProgress, timeout_ms=settings.CAMPAIGN_LOCK_TIMEOUT_MS)


def campaign_lock(*, workspace: Workspace, campaign_id: UUID | str) -> Campaign:
    """Load a campaign FOR UPDATE inside campaign_transition(). Two transitions of one campaign never
    interleave; one that cannot get the lock in time is a 409."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("campaign_lock must run inside transaction.atomic()")
    try:
        campaign = (
            Campaign.objects.select_for_update(of=("self",))
            .select_related("workspace", "template")
            .filter(workspace=workspace, pk=campaign_id)
            .first()
        )
    except (ValueError, TypeError):
        campaign = None
    except OperationalError as exc:
        if is_lock_timeout(exc):
            raise campaign_errors.CampaignTransitionInProgress() from None
        raise
    if campaign is None:
        raise errors.NotFound("No such campaign in this workspace.")
    return campaign


@dataclass(frozen=True)
class ScheduleRequest:
    """A parsed schedule body (docs/architecture.md#campaigns). Build it with `schedule_parse`."""

    schedule_type: str  # immediate | scheduled | recurring
    scheduled_at: datetime | None = None
    timezone_name: str = ""
    recurring: scheduling.RecurringConfig | None = None
    anchor: Any = None
    first_run_at: datetime | None = None
    send_time_optimization: dict | None = None
    recipient_local_time: bool = False
    max_lateness_minutes: int | None = None
    quiet_hours: QuietHours | None = None
    only_new_recipients: bool = False


# A week: later than that a "late" run is a different campaign, and the schedule should say so.
MAX_LATENESS_MINUTES = 7 * 24 * 60


def schedule_parse(
    *,
    schedule_type: str | None = None,
    scheduled_at: Any = None,
    timezone_name: str | None = None,
    recurring_config: Any = None,
    send_time_optimization: Any = None,
    recipient_local_time: bool = False,
    max_lateness_minutes: Any = None,
    quiet_hours: Any = None,
    only_new_recipients: Any = False,
    now: datetime | None = None,
) -> ScheduleRequest:
    """Validate a schedule body against the time rules of docs/architecture.md#time. Raises a 400 naming the field."""
    request = _schedule_parse_times(
        schedule_type=schedule_type,
        scheduled_at=scheduled_at,
        timezone_name=timezone_name,
        recurring_config=recurring_config,
        send_time_optimization=send_time_optimization,
        recipient_local_time=recipient_local_time,
        now=now or timezone.now(),
    )
    if request.schedule_type == "immediate":
        return request
    return replace(
        request,
        **_parse_policies(
            schedule_type=request.schedule_type,
            max_lateness_minutes=max_lateness_minutes,
            quiet_hours=quiet_hours,
            only_new_recipients=only_new_recipients,
        ),
    )


def _parse_policies(
    *, schedule_type: str, max_lateness_minutes: Any, quiet_hours: Any, only_new_recipients: Any
) -> dict:
    """The scheduling policies of docs/decisions/060, every problem at once."""
    problems: dict[str, list[str]] = {}
    lateness = max_lateness_minutes
    if lateness is not None and (
        isinstance(lateness, bool) or not isinstance(lateness, int) or not 1 <= lateness <= MAX_LATENESS_MINUTES
    ):
        problems["max_lateness_minutes"] = [
            f"max_lateness_minutes must be a whole number of minutes from 1 to {MAX_LATENESS_MINUTES}, or null."
        ]
    quiet = None
    try:
        quiet = parse_quiet_hours(quiet_hours)
    except errors.ValidationError as exc:
        problems.update(exc.details)
    only_new = only_new_recipients
    if only_new is None:
        only_new = False
    if not isinstance(only_new, bool):
        problems["only_new_recipients"] = ["Must be true or false."]
    elif only_new and schedule_type != "recurring":
        problems["only_new_recipients"] = ["only_new_recipients applies to recurring schedules only."]
    if problems:
        raise errors.ValidationError(details=problems)
    return {"max_lateness_minutes": lateness, "quiet_hours": quiet, "only_new_recipients": only_new}


def _schedule_parse_times(
    *,
    schedule_type: str | None,
    scheduled_at: Any,
    timezone_name: str | None,
    recurring_config: Any,
    send_time_optimization: Any,
    recipient_local_time: bool,
    now: datetime,
) -> ScheduleRequest:
    if not schedule_type:
        if scheduled_at is not None:
            schedule_type = "scheduled"
        elif recurring_config is not None:
            schedule_type = "recurring"
        else:
            raise errors.ValidationError.for_field(
                "schedule_type", "schedule_type is required: immediate, scheduled or recurring."
            )
    sto = _parse_sto(send_time_optimization)
    if schedule_type == "immediate":
        return ScheduleRequest(schedule_type="immediate")
    if schedule_type == "scheduled":
        if recurring_config is not None:
            raise errors.ValidationError.for_field(
                "recurring_config", "Only a recurring schedule takes recurring_config."
            )
        instant = timerules.parse_instant(value=scheduled_at, timezone_name=timezone_name, now=now)
        return ScheduleRequest(
            schedule_type="scheduled",
            scheduled_at=instant,
            timezone_name=timezone_name or "",
            first_run_at=instant,
            send_time_optimization=sto,
            recipient_local_time=bool(recipient_local_time),
        )
    if schedule_type == "recurring":
        if scheduled_at is not None:
            raise errors.ValidationError.for_field(
                "scheduled_at", "A recurring schedule takes recurring_config, not scheduled_at."
            )
        if recurring_config is None:
            raise errors.ValidationError.for_field("recurring_config", "A recurring schedule needs recurring_config.")
        config = scheduling.parse_recurring_config(recurring_config, now=now)
        # "Every 2 weeks" counts from the first run, which is the next matching slot from now (what a user
        # of an ESP expects), not a full period later: anchor = the local date of the first slot.
        first = scheduling.next_runs(config=replace(config, interval=1), after=now, count=1)
        anchor = first[0].astimezone(config.zone).date() if first else None
        runs = scheduling.next_runs(config=config, after=now, count=1, anchor=anchor)
        if not runs:
            raise errors.ValidationError.for_field(
                "recurring_config.end_date", "The schedule has no run before its end_date."
            )
        return ScheduleRequest(
            schedule_type="recurring",
            recurring=config,
            anchor=anchor,
            first_run_at=runs[0],
            timezone_name=config.time_zone,
            send_time_optimization=sto,
            recipient_local_time=bool(recipient_local_time),
        )
    raise errors.ValidationError.for_field(
        "schedule_type", f"'{schedule_type}' is not a schedule type; use immediate, scheduled or recurring."
    )


def _parse_sto(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise errors.ValidationError.for_field("send_time_optimization", "send_time_optimization must be an object.")
    unknown = set(value) - {"window_hours", "holdout_percent"}
    if unknown:
        raise errors.ValidationError(
            details={f"send_time_optimization.{k}": ["Unknown field."] for k in sorted(unknown)}
        )
    hours = value.get("window_hours")
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 72:
        raise errors.ValidationError.for_field(
            "send_time_optimization.window_hours", "window_hours must be a whole number of hours from 1 to 72."
        )
    holdout = value.get("holdout_percent", 0)
    if isinstance(holdout, bool) or not isinstance(holdout, int) or not 0 <= holdout <= 50:
        raise errors.ValidationError.for_field(
            "send_time_optimization.holdout_percent", "holdout_percent must be a whole number from 0 to 50."
        )
    return {"window_hours": hours, "holdout_percent": holdout}


def _apply_schedule(campaign: Campaign, request: ScheduleRequest, *, now: datetime) -> None:
    campaign.clear_schedule()
    campaign.schedule_type = request.schedule_type
    campaign.scheduled_at = request.scheduled_at
    campaign.schedule_timezone = request.timezone_name
    campaign.recurring_config = request.recurring.to_dict() if request.recurring else None
    campaign.recurring_anchor = request.anchor
    campaign.send_time_optimization = request.send_time_optimization
    campaign.recipient_local_time = request.recipient_local_time
    campaign.max_lateness_minutes = request.max_lateness_minutes
    campaign.quiet_hours = request.quiet_hours.to_dict() if request.quiet_hours else None
    campaign.only_new_recipients = request.only_new_recipients
    campaign.next_run_at = request.first_run_at
    if request.recipient_local_time and request.first_run_at:
        # The run starts when the first zone on Earth reaches the wall time (campaigns.planning).
        local_date, wall = local_date_and_wall_time(campaign=campaign, occurrence=request.first_run_at)
        campaign.next_run_at = local_time_launch_at(local_date=local_date, wall=wall, now=now)


SCHEDULE_FIELDS = [
    "status",
    "schedule_type",
    "scheduled_at",
    "schedule_timezone",
    "recurring_config",
    "recurring_anchor",
    "next_run_at",
    "launch_enqueued_at",
    "send_time_optimization",
    "recipient_local_time",
    "max_lateness_minutes",
    "quiet_hours",
    "only_new_recipients",
    "sandbox",
    "updated_at",
]


def _require_ready(*, workspace: Workspace, campaign: Campaign) -> None:
    readiness = campaign_readiness(workspace=workspace, campaign=campaign)
    if not readiness["can_send"]:
        raise campaign_errors.CampaignNotReady(missing=readiness["missing"])


def _campaign_event(campaign: Campaign, type: str, *, run: CampaignRun | None = None, **data) -> None:
    """A lifecycle event in the one event stream (docs/architecture.md#events), written in the transition's
    own transaction, so it exists exactly when the transition does."""
    event_record(
        workspace_id=campaign.workspace_id,
        type=type,
        campaign_id=campaign.pk,
        run_id=run.pk if run is not None else None,
        data={"status": campaign.status, **data},
    )


def _schedule_data(campaign: Campaign) -> dict:
    return {
        "schedule_type": campaign.schedule_type,
        "next_run_at": timerules.to_utc_iso(campaign.next_run_at) if campaign.next_run_at else None,
    }


def _run_totals(run: CampaignRun) -> dict:
    return {"total": run.total, "sent": run.sent, "failed": run.failed, "skipped": run.skipped}


def campaign_schedule(
    *,
    workspace: Workspace,
    campaign_id: UUID | str,
    request: ScheduleRequest,
    sandbox: bool = False,
    now: datetime | None = None,
) -> Campaign:
    """Schedule, reschedule, or (`immediate`) clear the schedule and return to draft. `sandbox`: scheduled
    with a sandbox key, so its runs hand nothing to the mail server (docs/decisions/061)."""
    now = now or timezone.now()
    with campaign_transition():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if request.schedule_type == "immediate":
            if not campaign.can_transition("schedule"):
                raise campaign_errors.CampaignNotSendable(status=campaign.status, action="change its schedule")
            was_scheduled = campaign.status == Campaign.Status.SCHEDULED
            campaign.clear_schedule()
            if was_scheduled:
                campaign.status = Campaign.Status.DRAFT
            campaign.save(update_fields=SCHEDULE_FIELDS)
            if was_scheduled:
                _campaign_event(campaign, Event.Type.CAMPAIGN_CANCELLED, reason="schedule cleared")
            return campaign
        if not campaign.can_transition("schedule"):
            raise campaign_errors.CampaignNotSendable(status=campaign.status)
        _require_ready(workspace=workspace, campaign=campaign)
        rescheduled = campaign.status == Campaign.Status.SCHEDULED
        _apply_schedule(campaign, request, now=now)
        campaign.sandbox = sandbox
        campaign.status = Campaign.Status.SCHEDULED
        campaign.save(update_fields=SCHEDULE_FIELDS)
        kind = Event.Type.CAMPAIGN_RESCHEDULED if rescheduled else Event.Type.CAMPAIGN_SCHEDULED
        _campaign_event(campaign, kind, **_schedule_data(campaign))
    return campaign


def campaign_cancel_schedule(*, workspace: Workspace, campaign_id: UUID | str) -> Campaign:
    """Return a scheduled campaign to draft. Too late once its run has started (409)."""
    with campaign_transition():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if not campaign.can_transition("cancel-schedule"):
            raise campaign_errors.CampaignNotCancellable(status=campaign.status)
        campaign.clear_schedule()
        campaign.status = Campaign.Status.DRAFT
        campaign.save(update_fields=SCHEDULE_FIELDS)
        _campaign_event(campaign, Event.Type.CAMPAIGN_CANCELLED, reason="schedule cancelled")
    return campaign


def _start_run(
    *, campaign: Campaign, trigger: str, due_at: datetime, occurrence: datetime | None = None
) -> CampaignRun:
    """Create the run the delivery engine fans out (campaign already locked by the caller)."""
    run = CampaignRun.objects.create(
        workspace_id=campaign.workspace_id,
        campaign=campaign,
        trigger=trigger,
        due_at=due_at,
        occurrence_at=occurrence or due_at,
        status=CampaignRun.Status.PENDING,
        sandbox=campaign.sandbox,
    )
    run_id = str(run.id)
    transaction.on_commit(lambda: enqueue_fan_out(run_id))
    return run


FAN_OUT_TASK = "campaigns.tasks.run_fan_out"


FOLD_EXPOSURE_TASK = "campaigns.tasks.fold_run_exposure"


def enqueue_fan_out(run_id: UUID | str) -> None:
    """By name, with its queue stated here: the task module imports this one. The fan-out goes on the bulk
    queue at priority 0, ahead of send batches (delivery.engine.SEND_BATCH_PRIORITY)."""
    current_app.send_task(FAN_OUT_TASK, args=[str(run_id)], queue="bulk", priority=0)


def campaign_send_now(
    *, workspace: Workspace, campaign_id: UUID | str, sandbox: bool = False, now: datetime | None = None
) -> Campaign:
    """Start sending at once: the campaign is `sending` when this returns and a run is created. `sandbox`:
    sent with a sandbox key, the run hands nothing to the mail server (docs/decisions/061)."""
    now = now or timezone.now()
    with campaign_transition():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if campaign.status not in Campaign.STARTABLE:
            raise campaign_errors.CampaignNotSendable(status=campaign.status)
        _require_ready(workspace=workspace, campaign=campaign)
        campaign.clear_schedule()
        campaign.sandbox = sandbox
        campaign.status = Campaign.Status.SENDING
        campaign.save(update_fields=SCHEDULE_FIELDS)
        run = _start_run(campaign=campaign, trigger="now", due_at=now)
        _campaign_event(campaign, Event.Type.CAMPAIGN_SENDING, run=run, trigger="now")
    return campaign


def campaign_audience_clean(value: Any) -> dict[str, list[str]]:
    """The one shape of a campaign's audience, for every writer (API, admin, tasks): an object with at most
    the keys of AUDIENCE_KEYS, each a list of at most AUDIENCE_MAX_IDS ids. Returns it with all four keys
    and the ids as strings, as it is stored; raises a 400 naming `audience.<key>`."""
    if not isinstance(value, dict):
        raise errors.ValidationError.for_field(
            "audience", 'The audience must be an object, e.g. {"include_labels": ["<label id>"]}.'
        )
    unknown = sorted(set(value) - set(AUDIENCE_KEYS))
    problems: dict[str, list[str]] = {f"audience.{key}": ["Unknown field."] for key in unknown}
    audience: dict[str, list[str]] = {}
    for key in AUDIENCE_KEYS:
        ids = value.get(key)
        if ids is None:
            ids = []
        if not isinstance(ids, list | tuple):
            problems[f"audience.{key}"] = ["Must be a list of ids (UUIDs)."]
        elif len(ids) > AUDIENCE_MAX_IDS:
            problems[f"audience.{key}"] = [f"At most {AUDIENCE_MAX_IDS} ids; this list has {len(ids)}."]
        else:
            try:
                audience[key] = [str(UUID(str(item))) for item in ids]
            except ValueError:
                problems[f"audience.{key}"] = ["Must be a list of ids (UUIDs)."]
    if problems:
        raise errors.ValidationError(details=problems)
    return audience


def campaign_tracking_clean(value: Any) -> dict[str, bool]:
    """Tracking flags as given: an object with `opens` and/or `clicks`, each true or false. A flag left out
    keeps its value (its default, on, for a new campaign): see `_assign_fields`. 400 naming `tracking.<key>`."""
    if not isinstance(value, dict):
        raise errors.ValidationError.for_field(
            "tracking", 'Tracking must be an object, e.g. {"opens": true, "clicks": false}.'
        )
    unknown = sorted(set(value) - set(TRACKING_KEYS))
    problems: dict[str, list[str]] = {f"tracking.{key}": ["Unknown field."] for key in unknown}
    for key in TRACKING_KEYS:
        if key in value and not isinstance(value[key], bool):
            problems[f"tracking.{key}"] = ["Must be true or false."]
    if problems:
        raise errors.ValidationError(details=problems)
    return {key: value[key] for key in TRACKING_KEYS if key in value}


def _clean_fields(fields: dict) -> dict:
    """Normalise and check what every writer of a campaign must agree on, whatever parsed it first (the API's
    serializer, the admin form, a direct call): from_email lower-cased, the audience and tracking shapes,
    the number of labels. Returns the fields as the other steps and `_assign_fields` take them."""
    cleaned = dict(fields)
    problems: dict[str, list[str]] = {}
    if "from_email" in cleaned:
        cleaned["from_email"] = normalize_email(cleaned["from_email"] or "")
    for name, clean in (("audience", campaign_audience_clean), ("tracking", campaign_tracking_clean)):
        if name in cleaned:
            try:
                cleaned[name] = clean(cleaned[name])
            except errors.ValidationError as exc:
                problems.update(exc.details)
    labels = cleaned.get("labels")
    if labels is not None and len(labels) > Campaign.MAX_LABELS:
        problems["labels"] = [f"At most {Campaign.MAX_LABELS} labels; this list has {len(labels)}."]
    if problems:
        raise errors.ValidationError(details=problems)
    return cleaned


# The campaign fields that become mail headers (From, Reply-To, Subject): single lines only (RFC 5322
# §2.2; docs/decisions/013). The preheader is body text.
HEADER_FIELDS = ("subject", "from_name", "from_email", "reply_to")


def _check_template_fields(fields: dict) -> None:
    """Header fields are single lines and template fields are templates we store; one 400 for all."""
    problems = single_line_problems(fields, HEADER_FIELDS)
    for name in ("subject", "preheader", "html", "text"):
        if name in fields:
            try:
                validate_template(fields[name] or "", field=name)
            except errors.ValidationError as exc:
                problems.setdefault(name, []).extend(exc.details[name])
    if problems:
        raise errors.ValidationError(details=problems)


def _check_references(*, workspace: Workspace, fields: dict) -> None:
    """Template, labels and audience ids must be this workspace's; another's is as unknown as a missing one."""
    problems: dict[str, list[str]] = {}
    template = fields.get("template")
    if template is not None and not Template.objects.filter(workspace=workspace, pk=template).exists():
        problems["template"] = [f"No template {template} in this workspace."]
    labels = fields.get("labels")
    if labels:
        found = _ids_of(Label, workspace=workspace, ids=labels)
        unknown = [str(x) for x in labels if str(x) not in found]
        if unknown:
            problems["labels"] = [f"Unknown label ids: {', '.join(unknown)}."]
    audience = fields.get("audience")  # cleaned: all four keys, ids as strings
    if audience is not None:
        for key, model, kind in (
            ("include_labels", Label, "label"),
            ("exclude_labels", Label, "label"),
            ("include_segments", Segment, "segment"),
            ("exclude_segments", Segment, "segment"),
        ):
            ids = audience[key]
            found = _ids_of(model, workspace=workspace, ids=ids)
            unknown = [x for x in ids if x not in found]
            if unknown:
                problems[f"audience.{key}"] = [f"Unknown {kind} ids: {', '.join(unknown)}."]
    if problems:
        raise errors.ValidationError(details=problems)


def _ids_of(model, *, workspace: Workspace, ids) -> set[str]:
    if not ids:
        return set()
    return {str(pk) for pk in model.objects.filter(workspace=workspace, pk__in=ids).values_list("pk", flat=True)}


def _assign_fields(campaign: Campaign, fields: dict) -> list[str]:
    changed = []
    for name, value in fields.items():
        if name == "labels":
            continue
        if name == "template":
            campaign.template_id = value
            changed.append("template")
        elif name == "audience":
            campaign.audience = value
            changed.append("audience")
        elif name == "tracking":
            campaign.tracking = {**campaign.effective_tracking(), **value}
            changed.append("tracking")
        else:
            setattr(campaign, name, value)
            changed.append(name)
    return changed


def campaign_create(
    *,
    workspace: Workspace,
    fields: dict,
    schedule: ScheduleRequest | None = None,
    sandbox: bool = False,
    now: datetime | None = None,
) -> Campaign:
    """Create a draft. With a schedule it is scheduled at once when ready; when not ready it stays a draft
    and the response's readiness says what is missing (the schedule is not kept: a draft has none)."""
    now = now or timezone.now()
    _check_template_fields(fields)
    fields = _clean_fields(fields)
    _check_references(workspace=workspace, fields=fields)
    with transaction.atomic():
        campaign = Campaign(workspace=workspace)
        _assign_fields(campaign, fields)
        campaign.save()
        if fields.get("labels"):
            campaign.labels.set(fields["labels"])
    if schedule is not None and schedule.schedule_type != "immediate":
        readiness = campaign_readiness(workspace=workspace, campaign=campaign)
        if readiness["can_send"]:
            campaign = campaign_schedule(
                workspace=workspace, campaign_id=campaign.id, request=schedule, sandbox=sandbox, now=now
            )
    return campaign


def campaign_create_send(
    *, workspace: Workspace, fields: dict, sandbox: bool = False, now: datetime | None = None
) -> Campaign:
    """Create and send in one call; nothing is stored when the campaign is not ready (422)."""
    _check_template_fields(fields)
    fields = _clean_fields(fields)
    _check_references(workspace=workspace, fields=fields)
    with transaction.atomic():
        campaign = Campaign(workspace=workspace)
        _assign_fields(campaign, fields)
        campaign.save()
        if fields.get("labels"):
            campaign.labels.set(fields["labels"])
        return campaign_send_now(workspace=workspace, campaign_id=campaign.id, sandbox=sandbox, now=now)


def campaign_update(*, workspace: Workspace, campaign_id: UUID | str, fields: dict) -> Campaign:
    """Edit a draft, scheduled or failed campaign. A scheduled campaign must stay ready (422 otherwise, and
    nothing changes), because it would otherwise fail at its launch, unseen."""
    _check_template_fields(fields)
    fields = _clean_fields(fields)
    _check_references(workspace=workspace, fields=fields)
    with campaign_transition():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if not campaign.can_transition("edit"):
            raise campaign_errors.CampaignNotEditable(status=campaign.status)
        changed = _assign_fields(campaign, fields)
        if campaign.status == Campaign.Status.SCHEDULED:
            _require_ready(workspace=workspace, campaign=campaign)
        campaign.save(update_fields=[*changed, "updated_at"] if changed else ["updated_at"])
        if "labels" in fields:
            campaign.labels.set(fields["labels"])
    return campaign


def campaign_delete(*, workspace: Workspace, campaign_id: UUID | str) -> None:
    with campaign_transition():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if not campaign.can_transition("delete"):
            raise campaign_errors.CampaignNotEditable(
                status=campaign.status, action="deleted", allowed="draft (cancel a schedule first)"
            )
        campaign.delete()


def campaign_duplicate(*, workspace: Workspace, campaign_id: UUID | str) -> Campaign:
    """A new draft with the same content, audience, tracking and labels, and no schedule."""
    source = campaign_get(workspace=workspace, campaign_id=campaign_id)
    copy = Campaign(
        workspace=workspace,
        name=f"Copy of {source.name}"[:200],
        template_id=source.template_id,
        substitution_data=source.substitution_data,
        category=source.category,
        audience=source.audience,
        tracking=source.tracking,
        **{name: getattr(source, name) for name in CONTENT_FIELDS},
    )
    with transaction.atomic():
        copy.save()
        copy.labels.set(source.labels.all())
    return copy


def campaign_pause(*, workspace: Workspace, campaign_id: UUID | str) -> Campaign:
    """Hold a sending campaign: its queued deliveries stay queued until resume."""
    with campaign_transition():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if not campaign.can_transition("pause"):
            raise campaign_errors.CampaignNotSending(status=campaign.status, action="paused")
        campaign.status = Campaign.Status.PAUSED
        campaign.save(update_fields=["status", "updated_at"])
        runs = list(
            CampaignRun.objects.filter(
                campaign=campaign, status__in=[CampaignRun.Status.SENDING, CampaignRun.Status.FANNING_OUT]
            )
        )
        CampaignRun.objects.filter(pk__in=[run.pk for run in runs]).update(status=CampaignRun.Status.PAUSED)
        for run in runs or [None]:
            _campaign_event(campaign, Event.Type.CAMPAIGN_PAUSED, run=run)
    return campaign


def campaign_resume(*, workspace: Workspace, campaign_id: UUID | str) -> Campaign:
    with campaign_transition():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if not campaign.can_transition("resume"):
            raise campaign_errors.CampaignNotPaused(status=campaign.status)
        campaign.status = Campaign.Status.SENDING
        campaign.save(update_fields=["status", "updated_at"])
        paused = list(
            CampaignRun.objects.filter(campaign=campaign, status=CampaignRun.Status.PAUSED).values_list("pk", flat=True)
        )
        CampaignRun.objects.filter(pk__in=paused, status=CampaignRun.Status.PAUSED).update(
            status=CampaignRun.Status.SENDING
        )
        # The tasks enqueued before the pause ran and left their rows: make them due for the dispatcher.
        for run_id in paused:
            deliveries_requeue(run_id=run_id)
        for run in CampaignRun.objects.filter(pk__in=paused) or [None]:
            _campaign_event(campaign, Event.Type.CAMPAIGN_SENDING, run=run, resumed=True)
    # Queued deliveries go out on the next dispatcher tick anyway; this only saves the wait.
    transaction.on_commit(dispatch_due.delay)
    return campaign


def campaign_stop(*, workspace: Workspace, campaign_id: UUID | str, now: datetime | None = None) -> Campaign:
    """Cancel the remaining recipients of a sending or paused campaign; what was sent stays sent."""
    now = now or timezone.now()
    with campaign_transition():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if campaign.status not in (Campaign.Status.SENDING, Campaign.Status.PAUSED):
            raise campaign_errors.CampaignNotSending(status=campaign.status, action="stopped")
        campaign.status = Campaign.Status.CANCELLED
        campaign.clear_schedule()
        campaign.save(update_fields=SCHEDULE_FIELDS)
        open_runs = CampaignRun.objects.filter(
            campaign=campaign,
            status__in=[
                CampaignRun.Status.PENDING,
                CampaignRun.Status.FANNING_OUT,
                CampaignRun.Status.SENDING,
                CampaignRun.Status.PAUSED,
            ],
        )
        for run in open_runs:
            cancelled = deliveries_cancel(run_id=run.pk, reason="campaign stopped")
            CampaignRun.objects.filter(pk=run.pk).update(
                status=CampaignRun.Status.CANCELLED,
                finished_at=now,
            )
            # Figures from the rows, so `pending` is what is still in flight (0 once it lands).
            _run_recount(run_id=run.pk, status=CampaignRun.Status.CANCELLED)
            logger.info("Campaign %s stopped: %s deliveries of run %s cancelled", campaign.id, cancelled, run.id)
            _campaign_event(campaign, Event.Type.CAMPAIGN_CANCELLED, run=run, reason="stopped", cancelled=cancelled)
    return campaign


def campaign_launch(*, campaign_id: UUID | str, due_at: datetime, now: datetime | None = None) -> CampaignRun | None:
    """Launch a scheduled campaign at its instant (the dispatcher's launch task calls this).

    Under the row lock: a campaign still `scheduled` for exactly `due_at` moves to `sending` and gets a
    run; anything else (cancelled or rescheduled meanwhile, launched already by a twin task, not yet due)
    returns None and changes nothing, so the task is safe to run twice. A cancel that took the lock
    first wins; one that comes after gets 409. A recurring campaign stores its next run now and returns to
    `scheduled` when this run ends (`campaign_run_finished`).
    """
    now = now or timezone.now()
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update(of=("self",)).select_related("workspace").filter(pk=campaign_id).first()
        )
        if campaign is None or campaign.status != Campaign.Status.SCHEDULED or campaign.next_run_at != due_at:
            return None
        if due_at > now:
            return None
        occurrence = _occurrence_for(campaign, due_at)
        if _too_late(campaign, due_at=due_at, now=now):
            return _run_missed(campaign, due_at=due_at, occurrence=occurrence, now=now)
        run = _start_run(campaign=campaign, trigger="schedule", due_at=due_at, occurrence=occurrence)
        campaign.status = Campaign.Status.SENDING
        if campaign.schedule_type == Campaign.ScheduleType.RECURRING:
            campaign.next_run_at = _next_recurring_launch(campaign, after=occurrence, now=now)
        else:
            campaign.next_run_at = None
        campaign.launch_enqueued_at = None
        campaign.save(update_fields=["status", "next_run_at", "launch_enqueued_at", "updated_at"])
        _campaign_event(campaign, Event.Type.CAMPAIGN_SENDING, run=run, trigger="schedule")
    return run


def _too_late(campaign: Campaign, *, due_at: datetime, now: datetime) -> bool:
    lateness = campaign.max_lateness_minutes
    return lateness is not None and now - due_at > timedelta(minutes=lateness)


def _run_missed(campaign: Campaign, *, due_at: datetime, occurrence: datetime, now: datetime) -> CampaignRun:
    """A launch later than the campaign's max_lateness_minutes (downtime, a stopped beat): it does not send
    late. The run is recorded as `missed` with its reason; a one-off campaign becomes `failed` (startable
    again), a recurring one waits for its next occurrence (docs/decisions/060). Campaign row locked by the
    caller."""
    late = int((now - due_at).total_seconds() // 60)
    reason = (
        f"missed: could not start until {late} minutes after its due time "
        f"(max_lateness_minutes is {campaign.max_lateness_minutes})"
    )
    run = CampaignRun.objects.create(
        workspace_id=campaign.workspace_id,
        campaign=campaign,
        trigger="schedule",
        due_at=due_at,
        occurrence_at=occurrence,
        status=CampaignRun.Status.MISSED,
        finished_at=now,
        failure_reason=reason,
        sandbox=campaign.sandbox,
    )
    if campaign.schedule_type == Campaign.ScheduleType.RECURRING:
        campaign.next_run_at = _next_recurring_launch(campaign, after=occurrence, now=now)
        campaign.status = Campaign.Status.SCHEDULED if campaign.next_run_at else Campaign.Status.SENT
    else:
        campaign.next_run_at = None
        campaign.status = Campaign.Status.FAILED
    campaign.launch_enqueued_at = None
    campaign.save(update_fields=["status", "next_run_at", "launch_enqueued_at", "updated_at"])
    _campaign_event(
        campaign,
        Event.Type.CAMPAIGN_MISSED,
        run=run,
        reason=reason,
        due_at=timerules.to_utc_iso(due_at),
        **_schedule_data(campaign),
    )
    logger.warning("Campaign %s missed its run due %s: %s", campaign.pk, due_at, reason)
    return run


def _occurrence_for(campaign: Campaign, due_at: datetime) -> datetime:
    """The schedule instant a launch stands for: for local-time runs the launch is earlier (campaigns.planning)."""
    if not campaign.recipient_local_time:
        return due_at
    if campaign.schedule_type == Campaign.ScheduleType.RECURRING:
        config = scheduling.RecurringConfig.from_dict(campaign.recurring_config)
        runs = scheduling.next_runs(
            config=config, after=due_at - timedelta(seconds=1), count=1, anchor=campaign.recurring_anchor
        )
        return runs[0] if runs else due_at
    return campaign.scheduled_at or due_at


def _next_recurring_launch(campaign: Campaign, *, after: datetime, now: datetime) -> datetime | None:
    config = scheduling.RecurringConfig.from_dict(campaign.recurring_config)
    runs = scheduling.next_runs(config=config, after=max(after, now), count=1, anchor=campaign.recurring_anchor)
    if not runs:
        return None
    if campaign.recipient_local_time:
        local_date, wall = local_date_and_wall_time(campaign=campaign, occurrence=runs[0])
        return local_time_launch_at(local_date=local_date, wall=wall, now=now)
    return runs[0]


def campaign_run_count(*, run_id: UUID | str, counts: dict[str, int]) -> None:
    """Live progress: add a send batch's outcomes to the run's counters (recounted exactly at the end)."""
    known = {
        name: value for name, value in counts.items() if name in ("sent", "failed", "skipped", "cancelled") and value
    }
    if known:
        CampaignRun.objects.filter(pk=run_id).update(**{name: F(name) + value for name, value in known.items()})


def campaign_run_deliveries_final(*, run_id: UUID | str, now: datetime | None = None) -> bool:
    """Every delivery of the run has ended (delivery.signals.run_deliveries_final): recount its counters
    from the rows (exact, whatever happened to the per-batch increments) and close it, which moves the
    campaign on. Only a run in `sending` is closed here: one still fanning out may get more rows, a paused
    or cancelled one is left alone. Guarded, so concurrent batches and the tick close it once. Returns
    whether this call closed the run."""
    S = Delivery.Status
    if Delivery.objects.filter(run_id=run_id, status__in=[S.QUEUED, S.SENDING]).exists():
        return False
    # A stopped run's last in-flight messages have landed: its figures become exact, it stays cancelled.
    _run_recount(run_id=run_id, status=CampaignRun.Status.CANCELLED)
    if not _run_recount(run_id=run_id, status=CampaignRun.Status.SENDING):
        return False
    return campaign_run_finished(run_id=run_id, now=now)


def _run_recount(*, run_id: UUID | str, status: str) -> bool:
    """Set the run's counters from its delivery rows, if the run is in `status`. Returns whether it was."""
    S = Delivery.Status
    if not CampaignRun.objects.filter(pk=run_id, status=status).exists():
        return False
    by_status = {
        row["status"]: row["n"]
        for row in Delivery.objects.filter(run_id=run_id).values("status").annotate(n=Count("id"))
    }
    return bool(
        CampaignRun.objects.filter(pk=run_id, status=status).update(
            sent=by_status.get(S.SENT, 0),
            failed=by_status.get(S.FAILED, 0) + by_status.get(S.BOUNCED, 0) + by_status.get(S.UNCERTAIN, 0),
            skipped=by_status.get(S.SKIPPED, 0),
            cancelled=by_status.get(S.CANCELLED, 0),
        )
    )


def campaign_run_finished(*, run_id: UUID | str, now: datetime | None = None) -> bool:
    """Close a run whose deliveries have all ended, and move its campaign on: a recurring campaign with a
    next run returns to `scheduled`, any other to `sent`. Guarded by status, so calling it twice (or for a
    stopped run) changes nothing. Returns whether this call closed the run."""
    now = now or timezone.now()
    with transaction.atomic():
        closed = CampaignRun.objects.filter(
            pk=run_id, status__in=[CampaignRun.Status.SENDING, CampaignRun.Status.FANNING_OUT]
        ).update(status=CampaignRun.Status.SENT, finished_at=now)
        if not closed:
            return False
        run = CampaignRun.objects.select_related("campaign").get(pk=run_id)
        campaign = Campaign.objects.select_for_update().get(pk=run.campaign_id)
        still_open = (
            CampaignRun.objects.filter(campaign=campaign)
            .exclude(
                status__in=[
                    CampaignRun.Status.SENT,
                    CampaignRun.Status.CANCELLED,
                    CampaignRun.Status.FAILED,
                    CampaignRun.Status.MISSED,
                ]
            )
            .exists()
        )
        if campaign.status == Campaign.Status.SENDING and not still_open:
            campaign.status = Campaign.Status.SCHEDULED if campaign.next_run_at else Campaign.Status.SENT
            campaign.save(update_fields=["status", "updated_at"])
        _campaign_event(campaign, Event.Type.CAMPAIGN_FINISHED, run=run, **_run_totals(run))
        transaction.on_commit(
            lambda: current_app.send_task(FOLD_EXPOSURE_TASK, args=[str(run_id)], queue="default"), robust=True
        )
    return True


def campaign_run_fold_exposure(*, run_id: UUID | str, now: datetime | None = None) -> int:
    """Teach the recipients' engagement profiles when we sent them this run (docs/decisions/030), once per
    run: the guard and the fold commit together. Returns how many hand-offs were folded."""
    with transaction.atomic():
        claimed = CampaignRun.objects.filter(
            pk=run_id, status=CampaignRun.Status.SENT, exposure_folded_at__isnull=True
        ).update(exposure_folded_at=now or timezone.now())
        if not claimed:
            return 0
        return deliveries_fold_exposure(run_id=run_id)


def campaign_mark_reported(*, workspace: Workspace, campaign_id: UUID | str) -> bool:
    """A sent campaign's first report figures exist: it is `reported` (and its figures keep updating).
    Under the campaign lock like every transition; any other status is left alone, so a second call, or one
    for a campaign still sending or between recurring runs, changes nothing. Returns whether it moved."""
    with transaction.atomic():
        campaign = campaign_lock(workspace=workspace, campaign_id=campaign_id)
        if campaign.status != Campaign.Status.SENT:
            return False
        campaign.status = Campaign.Status.REPORTED
        campaign.save(update_fields=["status", "updated_at"])
        _campaign_event(campaign, Event.Type.CAMPAIGN_REPORTED)
    return True


def campaign_run_failed(*, run_id: UUID | str, reason: str, now: datetime | None = None) -> bool:
    """A launch that failed outright (the audience query broke, the campaign could not render): the run is
    `failed` and so is the campaign, which can be started again (docs/architecture.md#campaigns)."""
    now = now or timezone.now()
    with transaction.atomic():
        failed = CampaignRun.objects.filter(
            pk=run_id, status__in=[CampaignRun.Status.PENDING, CampaignRun.Status.FANNING_OUT]
        ).update(status=CampaignRun.Status.FAILED, finished_at=now, failure_reason=reason[:500])
        if not failed:
            return False
        run = CampaignRun.objects.get(pk=run_id)
        Campaign.objects.filter(pk=run.campaign_id, status=Campaign.Status.SENDING).update(
            status=Campaign.Status.FAILED, updated_at=now
        )
    return True
