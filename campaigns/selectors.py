import contextlib
import itertools
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.db.models import Count, Exists, Max, OuterRef, QuerySet, Subquery
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from accounts.models import SendingDomain, Workspace, normalize_domain
from accounts.selectors import dns_check_warnings, sending_domain_warnings
from audience import engagement as eng
from audience.models import Contact, Label, Segment, normalize_email
from audience.selectors import audience_sendable, epoch_us_sql, profile_vector_sql
from campaigns.models import AUDIENCE_KEYS, Campaign, CampaignRun, Template
from campaigns.planning import (
    RECIPIENT_COLUMNS,
    STO_CHUNK,
    RecipientChunk,
    RunPlanner,
    SendPolicy,
    local_time_launch_at,
    recipient_zone,
)
from campaigns.scheduling import RecurringConfig, next_runs, upcoming_runs
from common import errors
from common.addresses import domain_of
from common.rendering import contact_context
from common.timerules import to_utc_iso
from delivery.content import MessageContent, has_body, render_parts, resolve_content
from delivery.models import Delivery
from delivery.selectors import workspace_complaint_rate
from delivery.throttle import sustained_rate


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


def campaign_list_page(*, workspace: Workspace) -> QuerySet[Campaign]:
    """campaign_list without the labels' prefetch: a page reads them with campaign_label_ids, one query
    without a queryset per campaign (prefetch_related builds one per row to hold its results)."""
    return Campaign.objects.filter(workspace=workspace).select_related("template", "workspace")


def campaign_label_ids(*, campaigns: list[Campaign]) -> dict:
    """{campaign id: [label id, ...]} in the labels' own order (by name, as campaign.labels.all())."""
    through = Campaign.labels.through
    label_ids: dict = {campaign.pk: [] for campaign in campaigns}
    rows = (
        through.objects.filter(campaign_id__in=list(label_ids))
        .order_by("label__name", "label_id")
        .values_list("campaign_id", "label_id")
    )
    for campaign_id, label_id in rows:
        label_ids[campaign_id].append(str(label_id))
    return label_ids


def campaign_get(*, workspace: Workspace, campaign_id) -> Campaign:
    try:
        campaign = campaign_list(workspace=workspace).filter(pk=campaign_id).first()
    except (ValueError, DjangoValidationError):
        campaign = None
    if campaign is None:
        raise errors.NotFound("No such campaign in this workspace.")
    return campaign


def campaign_recipients(
    *, workspace: Workspace, campaign: Campaign, run: CampaignRun | None = None, only_new: bool | None = None
) -> QuerySet:
    """The campaign's sendable recipients now, in one SQL query (docs/architecture.md#delivery-engine).

    With `only_new_recipients`, minus every contact an earlier run of the campaign reached (a delivery
    `sent`): an anti-join in the same query, so it costs one pass over the campaign's deliveries at any
    audience size. `run` is the run being fanned out (its own rows are not "earlier"); readiness
    passes `only_new=False` (a campaign whose audience has all been reached is still a valid campaign)."""
    audience = campaign.audience or {}
    recipients = audience_sendable(
        workspace=workspace,
        include_labels=audience.get("include_labels", []),
        exclude_labels=audience.get("exclude_labels", []),
        include_segments=audience.get("include_segments", []),
        exclude_segments=audience.get("exclude_segments", []),
    )
    if campaign.only_new_recipients if only_new is None else only_new:
        reached = Delivery.objects.filter(campaign=campaign, contact_id=OuterRef("pk"), status=Delivery.Status.SENT)
        if run is not None:
            reached = reached.exclude(run=run)
        recipients = recipients.exclude(Exists(reached))
    return recipients


def campaign_recipient_chunks(*, recipients: QuerySet, size: int) -> Iterator[RecipientChunk]:
    """The recipients as columns for the STO planner, in chunks of `size`, in whatever order the database
    finds cheapest (nothing in the plan depends on it: the holdout is chosen by a hash).

    PostgreSQL: one query through a binary server-side cursor; every row has a fixed-size profile (zeros
    when the contact has none), so a chunk's profiles are one join of bytes and one numpy view, with no
    Python per recipient but the driver's own. Must run inside a transaction (the cursor lives in it).
    Elsewhere: the ORM's rows of planning.RECIPIENT_COLUMNS."""
    if connection.vendor != "postgresql":
        rows = recipients.order_by().values_list(*RECIPIENT_COLUMNS).iterator(chunk_size=size)
        while chunk := list(itertools.islice(rows, size)):
            yield RecipientChunk.from_rows(chunk)
        return
    # The row planner's columns but the address (the writer joins it from the contacts).
    inner = recipients.order_by().values_list(*(c for c in RECIPIENT_COLUMNS if c != "email"))
    sql, params = inner.query.sql_with_params()
    engagement, engagement_params = profile_vector_sql("q.engagement__engagement")
    exposure, exposure_params = profile_vector_sql("q.engagement__exposure")
    # Each row as one fixed-size record (see _RECORD) and its zone: two values a row for the driver to
    # make, not seven, and one numpy view of a chunk's records. The profiles go last, so building the
    # record copies each 672-byte vector once (every `||` copies both sides).
    query = (
        f"SELECT uuid_send(q.id) || int8send({epoch_us_sql('q.engagement__decayed_to')}) "
        "|| int8send(COALESCE(q.engagement__opens, 0)::int8) || int8send(COALESCE(q.engagement__clicks, 0)::int8) "
        f"|| {engagement} || {exposure}, q.timezone FROM ({sql}) q"
    )
    connection.ensure_connection()
    with connection.cursor() as plain:
        # Plan for reading every row, not the first few (a cursor's default): hash joins and sequential
        # scans, not an index walk over a profile table that does not fit in memory. The contacts are the
        # hashed side; with the default 4 MB a million of them spill to disk in batches, and the 1.4 KB
        # profile rows that probe them are written out and read back with them. JIT compiles for
        # seconds and wins nothing on this plan (https://www.postgresql.org/docs/15/jit-decision.html).
        plain.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        plain.execute("SET LOCAL jit = off")
        plain.execute(f"SET LOCAL work_mem = '{int(settings.STO_FANOUT_WORK_MEM_MB)}MB'")
    with connection.connection.cursor(name=f"recipients_{uuid.uuid4().hex}", binary=True) as cursor:
        cursor.execute(query, [*engagement_params, *exposure_params, *params])
        yield from _prefetched(cursor, size)


def _prefetched(cursor, size: int) -> Iterator[RecipientChunk]:
    """The cursor's rows in chunks, the next chunk fetched by a thread while the caller plans this one:
    PostgreSQL joins and sends the rows (half the fan-out's time) while numpy scores, on the other core.
    The caller may use the connection between chunks (psycopg serialises it with a lock)."""
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                rows = cursor.fetchmany(size)
                ready.put(rows)
                if not rows:
                    return
        except BaseException as exc:  # handed to the caller, which raises it
            ready.put(exc)

    worker = threading.Thread(target=fetch, name="fan-out-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            rows = ready.get()
            if isinstance(rows, BaseException):
                raise rows
            if not rows:
                return
            yield _chunk_of(rows)
    finally:
        stop.set()
        # Unblock a put and wait, so the cursor is not closed under the thread.
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)
        worker.join()


def campaign_recipient_id_chunks(*, recipients: QuerySet, size: int = 20_000) -> Iterator[bytes]:
    """Every recipient's id, 16 bytes each, in chunks (for RunPlanner.choose_holdout). PostgreSQL: a binary
    cursor inside the caller's transaction; only 16 bytes a recipient cross."""
    if connection.vendor != "postgresql":
        ids = recipients.order_by().values_list("id", flat=True).iterator(chunk_size=size)
        while chunk := list(itertools.islice(ids, size)):
            yield b"".join(i.bytes for i in chunk)
        return
    sql, params = recipients.order_by().values_list("id").query.sql_with_params()
    connection.ensure_connection()
    with connection.connection.cursor(name=f"recipient_ids_{uuid.uuid4().hex}", binary=True) as cursor:
        cursor.execute(f"SELECT uuid_send(q.id) FROM ({sql}) q", params)
        while rows := cursor.fetchmany(size):
            yield b"".join(row[0] for row in rows)


# One recipient as campaign_recipient_chunks reads it: uuid_send and int8send are big-endian; the profile
# vectors are stored as the engagement module writes them (eng.DTYPE, native order).
_RECORD = np.dtype(
    [
        ("id", "V16"),
        ("decayed_to_us", ">i8"),
        ("opens", ">i8"),
        ("clicks", ">i8"),
        ("engagement", eng.DTYPE, (eng.HOURS_OF_WEEK,)),
        ("exposure", eng.DTYPE, (eng.HOURS_OF_WEEK,)),
    ]
)


def _chunk_of(rows: list[tuple]) -> RecipientChunk:
    records, zones = zip(*rows, strict=True)
    a = np.frombuffer(b"".join(records), dtype=_RECORD)
    names, zone_of = np.unique(np.array(zones, dtype=object), return_inverse=True)
    return RecipientChunk(
        ids=a["id"].tobytes(),
        zones=names.tolist(),
        zone_of=zone_of.astype(np.int64),
        engagement=a["engagement"],
        exposure=a["exposure"],
        decayed_to_us=a["decayed_to_us"].astype(np.int64),
        opens=a["opens"].astype(np.int64),
        clicks=a["clicks"].astype(np.int64),
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
        workspace_id=campaign.workspace_id,
        campaign_id=campaign.pk,
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

    domains = SendingDomain.objects.filter(workspace=workspace).values_list("domain", "verified", "dns_checks")
    checks_of = {domain: checks for domain, _, checks in domains}
    verified = {domain for domain, is_verified, _ in domains if is_verified}
    complaints = workspace_complaint_rate(workspace=workspace) if campaigns else None
    sender_warnings: dict[str, list[dict]] = {}
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
                audience_ok[key] = campaign_recipients(workspace=workspace, campaign=campaign, only_new=False).exists()
            if not audience_ok[key]:
                missing.append("audience")
        if complaints.level == "hold":
            missing.append("complaint_rate")
        if campaign.from_email not in sender_warnings:
            sender_warnings[campaign.from_email] = _warnings(
                checks_of.get(_sender_domain(campaign.from_email) or ""), complaints
            )
        summaries[campaign.pk] = {
            "readiness": {
                "can_send": not missing,
                "missing": missing,
                "warnings": sender_warnings[campaign.from_email],
            },
            "progress": _progress(latest.get(campaign.pk)),
        }
    return summaries


def deliverability_warnings(*, workspace: Workspace, from_email: str) -> list[dict]:
    """What may hurt delivery without stopping a send: the sender domain's SPF and DMARC warnings and a
    complaint rate above the warning threshold, each {"code", "message"} (readiness and send-plan)."""
    warnings = sending_domain_warnings(workspace=workspace, email=from_email) if from_email else []
    return warnings + _warnings(None, workspace_complaint_rate(workspace=workspace))


def _warnings(dns_checks: dict | None, complaints) -> list[dict]:
    warnings = dns_check_warnings(dns_checks or {})
    if complaints.level in ("warn", "hold"):
        warnings.append({"code": "complaint_rate", "message": complaints.message()})
    return warnings


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
    # The ids as a subquery of the same statement: one round trip, not two.
    return {run.campaign_id: run for run in CampaignRun.objects.filter(pk__in=run_ids)}


def _progress(run: CampaignRun | None) -> dict:
    if run is None:
        return {"total": 0, "sent": 0, "failed": 0, "cancelled": 0, "pending": 0}
    ended = run.sent + run.failed + run.skipped + run.cancelled
    return {
        "total": run.total,
        "sent": run.sent,
        "failed": run.failed,
        "cancelled": run.cancelled,
        "pending": max(run.total - ended, 0),
    }


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
        return _send_plan_of_run(workspace=workspace, campaign=campaign, run=run, email=email, sample_size=sample_size)

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
        per_hour, total, sample, groups = _sto_plan(planner, recipients, email=email, sample_size=sample_size)
    else:
        per_hour, total, groups = {}, 0, []
        for row in recipients.values("timezone").annotate(n=Count("id")).order_by():
            send_at = planner.fixed(row["timezone"] or "").send_at
            key = _iso(_hour(send_at))
            per_hour[key] = per_hour.get(key, 0) + row["n"]
            total += row["n"]
            groups.append((send_at, row["n"], row["timezone"] or ""))
        chosen = recipients.filter(email=email) if email else recipients.order_by("email")[:sample_size]
        sample = [_entry(row) for row in planner.plan(list(chosen.values_list(*planner.columns)))]
    finish, warnings = _projection(workspace=workspace, campaign=campaign, policy=policy, groups=groups)
    warnings += _audience_warnings(workspace=workspace, campaign=campaign, sendable=total)
    return {
        "source": "plan",
        "run_id": None,
        "total": total,
        "per_hour": dict(sorted(per_hour.items())),
        "sample": sample,
        "projected_finish_at": _iso(finish),
        "warnings": warnings + deliverability_warnings(workspace=workspace, from_email=campaign.from_email),
    }


def _projection(
    *,
    workspace: Workspace,
    campaign: Campaign,
    policy: SendPolicy,
    groups: list[tuple[datetime, int, str]],
    run: CampaignRun | None = None,
) -> tuple[datetime | None, list[dict]]:
    """When the last message should be handed off, and what stands in its way.

    One queue at the rate the throttles in force allow (delivery.throttle.sustained_rate): first the
    workspace's deliveries already queued and due before this send starts (the queue ahead), then each
    group of recipients from its planned time on. Without any rate limit it is the last planned time. Warns
    when that runs past the STO window or into a group's quiet hours."""
    if not groups:
        return None, []
    warnings: list[dict] = []
    now = timezone.now()
    rate = sustained_rate(workspace_id=workspace.pk, sending_domain=_sender_domain(campaign.from_email) or "")
    groups = sorted(groups)
    clock = max(groups[0][0], now)
    if rate:
        ahead = Delivery.objects.filter(workspace=workspace, status=Delivery.Status.QUEUED, send_at__lte=clock)
        if run is not None:
            ahead = ahead.exclude(run=run)
        clock += timedelta(seconds=ahead.count() / rate)
    quiet = policy.quiet_hours
    into_quiet: dict[str, int] = {}
    for send_at, count, zone in groups:
        start = max(clock, send_at)
        clock = start + timedelta(seconds=count / rate) if rate else start
        if quiet is not None and rate:
            zone_name = recipient_zone(policy=policy, contact_timezone=zone)
            window_starts = quiet.next_start_after(start, ZoneInfo(zone_name))
            if window_starts is not None and window_starts < clock:
                into_quiet[zone_name] = into_quiet.get(zone_name, 0) + count
    if rate is not None and policy.sto_window_hours:
        closes = policy.launch_at + timedelta(hours=policy.sto_window_hours)
        if clock > closes:
            warnings.append(
                {
                    "code": "throttle_exceeds_sto_window",
                    "message": f"At {rate:g} messages a second the send ends at {_iso(clock)}, after the "
                    f"{policy.sto_window_hours}-hour STO window closes at {_iso(closes)}.",
                }
            )
    for zone_name, count in sorted(into_quiet.items()):
        warnings.append(
            {
                "code": "throttle_runs_into_quiet_hours",
                "message": f"At {rate:g} messages a second, {count} recipients in {zone_name} cannot all be "
                "sent before their quiet hours begin; the rest wait until the quiet hours end.",
            }
        )
    return clock, warnings


def _audience_warnings(*, workspace: Workspace, campaign: Campaign, sendable: int) -> list[dict]:
    """Who the audience selects but will not get the message, and a sender the workspace has not verified."""
    warnings = []
    audience = campaign.audience or {}
    selected = audience_sendable(
        workspace=workspace,
        include_labels=audience.get("include_labels", []),
        exclude_labels=audience.get("exclude_labels", []),
        include_segments=audience.get("include_segments", []),
        exclude_segments=audience.get("exclude_segments", []),
        sendable_only=False,
    ).count()
    left_out = selected - campaign_recipients(workspace=workspace, campaign=campaign, only_new=False).count()
    if left_out > 0:
        warnings.append(
            {
                "code": "audience_has_suppressed",
                "message": f"{left_out} contacts of the audience are unsubscribed, bounced, complained or on the "
                "suppression list; they will not get this campaign.",
            }
        )
    domain = _sender_domain(campaign.from_email) if campaign.from_email else None
    if domain is None or not SendingDomain.objects.filter(workspace=workspace, domain=domain, verified=True).exists():
        warnings.append(
            {
                "code": "sending_domain_unverified",
                "message": f"The sender's domain ({domain or 'none'}) is not a verified sending domain of the "
                "workspace; the campaign cannot be sent until it is.",
            }
        )
    return warnings


def _send_plan_of_run(
    *, workspace: Workspace, campaign: Campaign, run: CampaignRun, email: str, sample_size: int
) -> dict:
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
    queued = (
        deliveries.filter(status=Delivery.Status.QUEUED)
        .annotate(minute=TruncMinute("send_at", tzinfo=UTC))
        .values("minute", "contact__timezone")
        .annotate(n=Count("id"))
        .order_by()
    )
    groups = [(row["minute"], row["n"], row["contact__timezone"] or "") for row in queued]
    policy = SendPolicy.for_campaign(campaign=campaign, launch_at=run.due_at, occurrence=run.occurrence_at)
    finish, warnings = _projection(workspace=workspace, campaign=campaign, policy=policy, groups=groups, run=run)
    return {
        "source": "deliveries",
        "run_id": str(run.id),
        "total": run.total,
        "per_hour": per_hour,
        "sample": sample,
        "projected_finish_at": _iso(finish or run.finished_at),
        "warnings": warnings + deliverability_warnings(workspace=workspace, from_email=campaign.from_email),
    }


def _sto_plan(
    planner: RunPlanner, recipients: QuerySet, *, email: str, sample_size: int
) -> tuple[dict, int, list, list]:
    """Every recipient through the planner in the fan-out's order and chunks (the same reader and the same
    `plan_chunk`): the hours exactly as the fan-out will write them, the sample (the first recipients by
    email, or the one asked for), and the groups (hour, count, zone) the finish projection reads."""
    if email:
        wanted = dict(recipients.filter(email=email).values_list("id", "email"))
    else:
        wanted = dict(recipients.order_by("email").values_list("id", "email")[:sample_size])
    wanted_ids = np.array([i.bytes for i in wanted], dtype="S16")
    counts: Counter = Counter()
    sample = []
    position = 0
    with transaction.atomic():
        planner.choose_holdout(campaign_recipient_id_chunks(recipients=recipients))
        for chunk in campaign_recipient_chunks(recipients=recipients, size=STO_CHUNK):
            planned = planner.plan_chunk(chunk)
            position += len(chunk)
            hours = planned.send_at // 3600
            zone_of = chunk.zone_of
            keys, n = np.unique(hours * len(chunk.zones) + zone_of, return_counts=True)
            for key, count in zip(keys.tolist(), n.tolist(), strict=True):
                hour, zone = divmod(key, len(chunk.zones))
                counts[(hour, chunk.zones[zone])] += count
            if len(wanted_ids):
                for i in np.flatnonzero(np.isin(np.frombuffer(chunk.ids, dtype="S16"), wanted_ids)).tolist():
                    contact_id = uuid.UUID(bytes=chunk.ids[16 * i : 16 * i + 16])
                    sample.append(_entry((contact_id, wanted[contact_id], *planned.entry(i))))
    per_hour: Counter = Counter()
    groups = []
    for (hour, zone), n in counts.items():
        at = datetime.fromtimestamp(hour * 3600, UTC)
        per_hour[_iso(at)] += n
        groups.append((at, n, zone))
    sample.sort(key=lambda e: e["email"])
    return dict(per_hour), position, sample, groups


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


def audience_recipient_count(*, workspace: Workspace, audience: dict) -> int:
    """Sendable contacts of an audience not saved yet (the admin's live count while an operator picks
    labels and segments); ids of another workspace, or not ids at all, select no one."""
    return audience_sendable(workspace=workspace, **{key: audience.get(key) or [] for key in AUDIENCE_KEYS}).count()


def campaign_audience_summary(*, workspace: Workspace, campaign: Campaign) -> dict:
    """The audience as names an operator recognises, with the sendable recipient count now: {"include_labels":
    ["customers"], ..., "unknown": n (ids no longer in the workspace), "count": n}. Two name queries and one
    count, whatever the size of the audience."""
    audience = campaign.audience or {}
    wanted = {key: [str(value) for value in audience.get(key) or []] for key in AUDIENCE_KEYS}
    label_ids = wanted["include_labels"] + wanted["exclude_labels"]
    segment_ids = wanted["include_segments"] + wanted["exclude_segments"]
    names = {}
    for model, ids in ((Label, label_ids), (Segment, segment_ids)):
        valid = [value for value in ids if _is_uuid(value)]
        rows = model.objects.filter(workspace=workspace, pk__in=valid).values_list("pk", "name")
        names.update({str(pk): name for pk, name in rows})
    summary: dict = {key: [names[value] for value in ids if value in names] for key, ids in wanted.items()}
    summary["unknown"] = sum(1 for ids in wanted.values() for value in ids if value not in names)
    summary["count"] = campaign_recipient_count(workspace=workspace, campaign=campaign)
    return summary


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def campaign_preview_contacts(*, workspace: Workspace, campaign: Campaign, limit: int = 50) -> list[Contact]:
    """Contacts to offer in the preview's chooser: the first recipients by email (the audience may be empty,
    then the workspace's first contacts)."""
    recipients = list(campaign_recipients(workspace=workspace, campaign=campaign).order_by("email")[:limit])
    return recipients or list(Contact.objects.filter(workspace=workspace).order_by("email")[:limit])


# --- The operators' home page (docs/decisions/090-operators-admin.md) -------------------------------------

TIMELINE_DAYS = 7


def campaigns_in_progress(*, workspace: Workspace, now: datetime | None = None) -> list[dict]:
    """Sending and paused campaigns with their latest run's progress and a projected finish: the later of
    the last planned send time still ahead (STO and local time spread a run) and the time the pending
    recipients take at the rate the run has kept since it launched. None while there is no rate yet."""
    now = now or timezone.now()
    campaigns = list(
        Campaign.objects.filter(
            workspace=workspace, status__in=[Campaign.Status.SENDING, Campaign.Status.PAUSED]
        ).order_by("next_run_at", "name")
    )
    latest = _latest_runs(campaigns)
    result = []
    for campaign in campaigns:
        run = latest.get(campaign.pk)
        progress = _progress(run)
        result.append(
            {
                "campaign": campaign,
                "run": run,
                "progress": progress,
                "projected_finish_at": _projected_finish(run, progress, now=now)
                if campaign.status == Campaign.Status.SENDING
                else None,
            }
        )
    return result


def _projected_finish(run: CampaignRun | None, progress: dict, *, now: datetime) -> datetime | None:
    if run is None or not progress["total"]:
        return None
    if not progress["pending"]:
        return run.finished_at or now
    last_planned = (
        Delivery.objects.filter(run=run).exclude(status__in=Delivery.FINAL).aggregate(last=Max("send_at"))["last"]
    )
    done = progress["total"] - progress["pending"]
    by_rate = None
    if run.launched_at and done:
        elapsed = (now - run.launched_at).total_seconds()
        by_rate = now + timedelta(seconds=elapsed * progress["pending"] / done)
    candidates = [value for value in (last_planned, by_rate) if value is not None]
    return max(candidates) if candidates else None


def campaign_timeline(*, workspace: Workspace, now: datetime | None = None, days: int = TIMELINE_DAYS) -> list[dict]:
    """Every send of the workspace's scheduled campaigns due in the next `days` days, oldest first:
    {"campaign", "at" (the run's start), "until" (the end of its spread, or None), "spread" (why it is
    spread: "sto", "local_time" or ""), "recipients"}. Recurring runs come from the same rules as the
    campaign's `upcoming_runs`; the spread of a local-time run is that of the next run's send plan."""
    now = now or timezone.now()
    end = now + timedelta(days=days)
    entries = []
    for campaign in Campaign.objects.filter(
        workspace=workspace, status=Campaign.Status.SCHEDULED, next_run_at__lt=end
    ).order_by("next_run_at"):
        runs = _runs_between(campaign, now=now, end=end)
        if not runs:
            continue
        recipients = campaign_recipient_count(workspace=workspace, campaign=campaign)
        spread, before, after = "", timedelta(0), timedelta(0)
        if campaign.recipient_local_time:
            hours = sorted(campaign_send_plan(workspace=workspace, campaign=campaign, sample_size=0)["per_hour"])
            if hours:
                first_start = _parse_hour(hours[0])
                spread = "local_time"
                before = first_start - runs[0]
                after = _parse_hour(hours[-1]) + timedelta(hours=1) - runs[0]
        if campaign.send_time_optimization:
            spread = "sto"
            after = max(after, timedelta(hours=campaign.send_time_optimization.get("window_hours") or 0))
        for at in runs:
            entries.append(
                {
                    "campaign": campaign,
                    "at": at + before,
                    "until": at + after if spread else None,
                    "spread": spread,
                    "recipients": recipients,
                }
            )
    return sorted(entries, key=lambda entry: (entry["at"], entry["campaign"].name))


def _runs_between(campaign: Campaign, *, now: datetime, end: datetime) -> list[datetime]:
    if campaign.schedule_type == Campaign.ScheduleType.RECURRING and campaign.recurring_config:
        config = RecurringConfig.from_dict(campaign.recurring_config)
        # A daily schedule has at most `days` + 1 runs in the window; an hourly one does not exist.
        runs = next_runs(
            config=config, after=now - timedelta(seconds=1), count=TIMELINE_DAYS * 4, anchor=campaign.recurring_anchor
        )
        due = [campaign.next_run_at] if campaign.next_run_at and campaign.next_run_at < now else []
        return due + [run for run in runs if run < end]
    if campaign.scheduled_at:
        return [campaign.scheduled_at] if campaign.scheduled_at < end else []
    return [campaign.next_run_at] if campaign.next_run_at else []


def _parse_hour(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def campaign_recent_problems(*, workspace: Workspace, now: datetime | None = None, days: int = 7) -> dict:
    """What needs an operator's eye: runs that failed or were missed in the last `days` days, and the
    campaigns on pause."""
    since = (now or timezone.now()) - timedelta(days=days)
    runs = CampaignRun.objects.filter(workspace=workspace, due_at__gte=since).select_related("campaign")
    return {
        "failed_runs": list(runs.filter(status=CampaignRun.Status.FAILED).order_by("-due_at")[:20]),
        "missed_runs": list(runs.filter(status=CampaignRun.Status.MISSED).order_by("-due_at")[:20]),
        "paused": list(Campaign.objects.filter(workspace=workspace, status=Campaign.Status.PAUSED).order_by("name")),
    }
