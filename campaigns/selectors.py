import itertools
from collections import Counter
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import TruncHour
from django.utils import timezone

from accounts.models import SendingDomain, Workspace, normalize_domain
from audience.models import Contact, normalize_email
from audience.selectors import audience_sendable
from campaigns.models import Campaign, CampaignRun, Template
from campaigns.planning import RunPlanner, SendPolicy, local_time_launch_at
from campaigns.scheduling import RecurringConfig, upcoming_runs
from common import errors
from common.addresses import domain_of
from common.rendering import contact_context
from common.timerules import to_utc_iso
from delivery.content import MessageContent, has_body, render_parts, resolve_content
from delivery.models import Delivery


def template_list(*, workspace: Workspace) -> QuerySet[Template]:
    return Template.objects.filter(workspace=workspace)


def template_get(*, workspace: Workspace, template_id) -> Template:
    try:
        template = Template.objects.filter(workspace=workspace, pk=template_id).first()
    except (ValueError, DjangoValidationError):  # not a UUID: no such template either
        template = None
    if template is None:
        raise errors.NotFound()
    return template


def template_name_taken(*, workspace: Workspace, name: str, exclude_id=None) -> bool:
    queryset = Template.objects.filter(workspace=workspace, name=name.strip())
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    return queryset.exists()


# --- Campaigns ---------------------------------------------------------------------------------------------


READINESS_ORDER = ("subject", "sender_email", "content", "audience")
# What each missing item of `campaign_readiness` asks for, in words (the admin's readiness panel).
READINESS_HINTS = {
    "subject": "a subject (the campaign's or its template's)",
    "sender_email": "a from email on a verified sending domain of the workspace",
    "content": "html, text or a template",
    "audience": "an include rule that selects at least one sendable contact",
}


def campaign_list(*, workspace: Workspace) -> QuerySet[Campaign]:
    return (
        Campaign.objects.filter(workspace=workspace).select_related("template", "workspace").prefetch_related("labels")
    )


def campaign_get(*, workspace: Workspace, campaign_id) -> Campaign:
    try:
        campaign = campaign_list(workspace=workspace).filter(pk=campaign_id).first()
    except (ValueError, DjangoValidationError):
        campaign = None
    if campaign is None:
        raise errors.NotFound("No such campaign in this workspace.")
    return campaign


def campaign_recipients(*, workspace: Workspace, campaign: Campaign) -> QuerySet:
    """The campaign's sendable recipients now, in one SQL query (docs/architecture.md#delivery-engine)."""
    audience = campaign.audience or {}
    return audience_sendable(
        workspace=workspace,
        include_labels=audience.get("include_labels", []),
        exclude_labels=audience.get("exclude_labels", []),
        include_segments=audience.get("include_segments", []),
        exclude_segments=audience.get("exclude_segments", []),
    )


def campaign_message_content(*, campaign: Campaign) -> MessageContent:
    """What the campaign's messages say and who sends them, decided once for preview, readiness and the
    send path (delivery.content.resolve_content: each part its own, else its template's)."""
    template = campaign.template
    subject, html, text = resolve_content(
        subject=campaign.subject,
        html=campaign.html,
        text=campaign.text,
        template_subject=template.subject if template else "",
        template_html=template.html if template else "",
        template_text=template.text if template else "",
    )
    tracking = campaign.tracking if isinstance(campaign.tracking, dict) else {}
    return MessageContent(
        subject=subject,
        html=html,
        text=text,
        from_email=campaign.from_email,
        from_name=campaign.from_name,
        reply_to=campaign.reply_to,
        preheader=campaign.preheader,
        track_opens=bool(tracking.get("opens")),
        track_clicks=bool(tracking.get("clicks")),
        substitution_data=campaign.substitution_data if isinstance(campaign.substitution_data, dict) else {},
    )


def campaign_effective_content(*, campaign: Campaign) -> dict[str, str]:
    """Subject, html and text to send (see campaign_message_content)."""
    content = campaign_message_content(campaign=campaign)
    return {"subject": content.subject, "html": content.html, "text": content.text}


def campaign_readiness(*, workspace: Workspace, campaign: Campaign) -> dict:
    """{can_send, missing} with `missing` in the order of docs/architecture.md#campaigns."""
    return campaign_summaries(workspace=workspace, campaigns=[campaign])[campaign.pk]["readiness"]


def campaign_summaries(*, workspace: Workspace, campaigns: list[Campaign]) -> dict:
    """Readiness and progress of many campaigns (a list page) in a fixed number of queries: the
    workspace's verified domains once, one audience check per distinct audience, the latest runs at once."""
    import json

    verified = set(SendingDomain.objects.filter(workspace=workspace, verified=True).values_list("domain", flat=True))
    audience_ok: dict[str, bool] = {}
    latest = _latest_runs(campaigns)
    summaries = {}
    for campaign in campaigns:
        content = campaign_effective_content(campaign=campaign)
        missing = []
        if not content["subject"].strip():
            missing.append("subject")
        if not campaign.from_email or _sender_domain(campaign.from_email) not in verified:
            missing.append("sender_email")
        if not has_body(html=content["html"], text=content["text"]):
            missing.append("content")
        audience = campaign.audience or {}
        if not (audience.get("include_labels") or audience.get("include_segments")):
            missing.append("audience")
        else:
            key = json.dumps(audience, sort_keys=True)
            if key not in audience_ok:
                audience_ok[key] = campaign_recipients(workspace=workspace, campaign=campaign).exists()
            if not audience_ok[key]:
                missing.append("audience")
        summaries[campaign.pk] = {
            "readiness": {"can_send": not missing, "missing": missing},
            "progress": _progress(latest.get(campaign.pk)),
        }
    return summaries


def _sender_domain(email: str) -> str | None:
    try:
        return normalize_domain(domain_of(email))
    except ValueError:
        return None


def _latest_runs(campaigns: list[Campaign]) -> dict:
    if not campaigns:
        return {}
    newest = CampaignRun.objects.filter(campaign=OuterRef("pk")).order_by("-due_at").values("pk")[:1]
    run_ids = (
        Campaign.objects.filter(pk__in=[c.pk for c in campaigns])
        .annotate(latest_run=Subquery(newest))
        .exclude(latest_run=None)
        .values_list("latest_run", flat=True)
    )
    return {run.campaign_id: run for run in CampaignRun.objects.filter(pk__in=list(run_ids))}


def _progress(run: CampaignRun | None) -> dict:
    if run is None:
        return {"total": 0, "sent": 0, "failed": 0, "pending": 0}
    ended = run.sent + run.failed + run.skipped
    return {"total": run.total, "sent": run.sent, "failed": run.failed, "pending": max(run.total - ended, 0)}


def campaign_upcoming_runs(*, campaign: Campaign, now: datetime | None = None) -> list[datetime]:
    if campaign.status != Campaign.Status.SCHEDULED:
        return []
    if campaign.schedule_type == Campaign.ScheduleType.RECURRING and campaign.recurring_config:
        config = RecurringConfig.from_dict(campaign.recurring_config)
        return upcoming_runs(config=config, now=now or timezone.now(), anchor=campaign.recurring_anchor)
    return [campaign.scheduled_at] if campaign.scheduled_at else []


def campaign_progress(*, campaign: Campaign) -> dict:
    """Counters of the campaign's latest run (a recurring campaign shows the run in progress or last)."""
    return _progress(campaign.runs.order_by("-due_at").first())


def campaign_runs(*, workspace: Workspace, campaign_id) -> QuerySet[CampaignRun]:
    campaign = campaign_get(workspace=workspace, campaign_id=campaign_id)
    return CampaignRun.objects.filter(workspace=workspace, campaign=campaign).order_by("-due_at")


def campaign_send_plan(*, workspace: Workspace, campaign: Campaign, email: str = "", sample_size: int = 20) -> dict:
    """Planned send times: counts per hour (UTC) and a sample of recipients with the reason for each
    (`email` narrows the sample to that recipient).

    After launch it reads the deliveries the engine wrote; before, it runs the fan-out's own planner
    (campaigns.planning.RunPlanner) over the current audience: without STO grouped by timezone in SQL (one
    row per zone, not per contact); with STO over every recipient in the fan-out's order, in chunks.
    """
    email = normalize_email(email) if email else ""
    run = campaign.runs.order_by("-due_at").first()
    if run is not None and run.total and campaign.status in (Campaign.Status.SENDING, Campaign.Status.PAUSED):
        return _send_plan_of_run(run=run, email=email, sample_size=sample_size)

    occurrence = campaign.next_run_at or timezone.now()
    if campaign.recipient_local_time and campaign.scheduled_at:
        occurrence = campaign.scheduled_at
    upcoming = campaign_upcoming_runs(campaign=campaign)
    if upcoming:
        occurrence = upcoming[0]
    launch_at = occurrence
    policy = SendPolicy.for_campaign(campaign=campaign, launch_at=launch_at, occurrence=occurrence)
    if policy.local_date is not None:
        launch_at = local_time_launch_at(local_date=policy.local_date, wall=policy.local_wall_time, now=timezone.now())
        policy = SendPolicy.for_campaign(campaign=campaign, launch_at=launch_at, occurrence=occurrence)
    planner = RunPlanner(policy=policy, workspace=workspace)
    recipients = campaign_recipients(workspace=workspace, campaign=campaign)
    if planner.sto:
        per_hour, total, sample = _sto_plan(planner, recipients, email=email, sample_size=sample_size)
    else:
        per_hour, total = {}, 0
        for row in recipients.values("timezone").annotate(n=Count("id")).order_by():
            key = _iso(_hour(planner.window(row["timezone"])[0].send_at))
            per_hour[key] = per_hour.get(key, 0) + row["n"]
            total += row["n"]
        chosen = recipients.filter(email=email) if email else recipients.order_by("email")[:sample_size]
        sample = [_entry(row) for row in planner.plan(list(chosen.values_list(*planner.columns)))]
    return {
        "source": "plan",
        "run_id": None,
        "total": total,
        "per_hour": dict(sorted(per_hour.items())),
        "sample": sample,
    }


def _send_plan_of_run(*, run: CampaignRun, email: str, sample_size: int) -> dict:
    deliveries = Delivery.objects.filter(run=run)
    per_hour: dict[str, int] = {}
    for row in deliveries.annotate(hour=_trunc_hour("send_at")).values("hour").annotate(n=Count("id")).order_by("hour"):
        per_hour[_iso(row["hour"])] = row["n"]
    chosen = deliveries.filter(email=email) if email else deliveries.order_by("send_at", "id")[:sample_size]
    sample = [
        {
            "email": d.email,
            "send_at": _iso(d.send_at),
            "reason_code": d.send_reason_code,
            "reason": d.send_reason,
            "status": d.status,
        }
        for d in chosen
    ]
    return {"source": "deliveries", "run_id": str(run.id), "total": run.total, "per_hour": per_hour, "sample": sample}


def _sto_plan(planner: RunPlanner, recipients: QuerySet, *, email: str, sample_size: int) -> tuple[dict, int, list]:
    """Every recipient through the planner in the fan-out's order and chunks: the hours exactly as the
    fan-out will write them, and the sample (the first recipients by email, or the one asked for)."""
    wanted = {email} if email else set(recipients.order_by("email").values_list("email", flat=True)[:sample_size])
    size = settings.DELIVERY_FANOUT_CHUNK_SIZE
    rows = recipients.order_by(*planner.order).values_list(*planner.columns).iterator(chunk_size=size)
    counts: Counter = Counter()
    sample = []
    position = 0
    while chunk := list(itertools.islice(rows, size)):
        planned = planner.plan(chunk, position=position)
        position += len(chunk)
        send_at = np.array([p[2].timestamp() for p in planned], dtype=np.int64)
        hours, n = np.unique(send_at // 3600, return_counts=True)
        counts.update(dict(zip(hours.tolist(), n.tolist(), strict=True)))
        sample.extend(_entry(p) for p in planned if p[1] in wanted)
    per_hour = {_iso(datetime.fromtimestamp(h * 3600, UTC)): n for h, n in counts.items()}
    sample.sort(key=lambda e: e["email"])
    return per_hour, position, sample


def _entry(planned: tuple) -> dict:
    _, email, send_at, code, reason = planned
    return {"email": email, "send_at": _iso(send_at), "reason_code": code, "reason": reason}


def _hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _trunc_hour(field: str):
    return TruncHour(field, tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return to_utc_iso(value) if value else None


def campaign_status_counts(*, workspace: Workspace) -> dict[str, int]:
    rows = Campaign.objects.filter(workspace=workspace).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


SAMPLE_CONTACT = {
    "email": "jane.doe@example.com",
    "first_name": "Jane",
    "last_name": "Doe",
    "timezone": "UTC",
    "attributes": {},
}


def campaign_preview(*, workspace: Workspace, campaign: Campaign, contact_id=None) -> dict:
    """Subject, html and text rendered for one contact of the workspace (or sample data), with the same
    renderer and context the send path uses."""
    contact = None
    if contact_id:
        try:
            contact = Contact.objects.select_related("workspace").filter(workspace=workspace, pk=contact_id).first()
        except (ValueError, DjangoValidationError):
            contact = None
        if contact is None:
            raise errors.ValidationError.for_field("contact_id", "No contact with this id in this workspace.")
    if contact is not None:
        context = contact_context(contact, campaign.substitution_data or {})
    else:
        context = {**(campaign.substitution_data or {}), **SAMPLE_CONTACT}
    # The send path links each message to its own unsubscribe token; a preview shows where it points.
    context["unsubscribe_url"] = f"{settings.PUBLIC_BASE_URL}/t/u/preview"
    parts = render_parts(campaign_message_content(campaign=campaign), context)
    return {
        "contact_id": contact.pk if contact else None,
        "email": contact.email if contact else SAMPLE_CONTACT["email"],
        "subject": parts.subject,
        "html": parts.html,
        "text": parts.text,
    }


def campaign_recipient_count(*, workspace: Workspace, campaign: Campaign) -> int:
    return campaign_recipients(workspace=workspace, campaign=campaign).count()
