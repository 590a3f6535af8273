"""Report reads (docs/architecture.md#reports): every figure from the rollups the aggregator keeps, so a
report is a handful of indexed rows however many events the campaign has."""

from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Count, QuerySet, Sum

from accounts.models import Workspace
from audience.models import Label
from campaigns.models import Campaign, CampaignRun
from campaigns.selectors import campaign_get
from common import errors
from delivery.models import Delivery, Event
from reports.models import AggregationState, LinkReport, OpenSlot, PendingEvent, ReportExport, RunReport

COUNTS = (
    "sent",
    "delivered",
    "bounced",
    "failed",
    "opens",
    "machine_opens",
    "unique_opens",
    "clicks",
    "unique_clicks",
    "unsubscribes",
    "complaints",
)


def _uuid(value, field: str) -> UUID:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise errors.ValidationError.for_field(field, "Must be a valid UUID.") from None


def report_campaign(*, workspace: Workspace, campaign_id, run_id=None) -> Campaign:
    """The workspace's campaign (404 otherwise) and, when `run_id` is given, a check that it is one of its
    runs (404 otherwise)."""
    campaign = campaign_get(workspace=workspace, campaign_id=_uuid(campaign_id, "campaign_id"))
    if run_id is not None:
        run_id = _uuid(run_id, "run_id")
        if not CampaignRun.objects.filter(workspace=workspace, campaign=campaign, pk=run_id).exists():
            raise errors.NotFound("No such run of this campaign.")
    return campaign


def _rates(figures: dict) -> dict:
    sent = figures["sent"]
    attempted = sent + figures["bounced"]

    def ratio(count: int, over: int) -> float:
        return round(count / over, 4) if over else 0.0

    return {
        "open_rate": ratio(figures["unique_opens"], sent),
        "click_rate": ratio(figures["unique_clicks"], sent),
        # A message refused at hand-off is `bounced` without ever being `sent`, so it is counted in what
        # was attempted; the other rates are over what was sent (docs/decisions/050).
        "bounce_rate": ratio(figures["bounced"], attempted),
        "unsubscribe_rate": ratio(figures["unsubscribes"], sent),
    }


def _figures(*, runs: QuerySet[RunReport], recipients: int) -> dict:
    sums = runs.aggregate(**{name: Sum(name) for name in COUNTS})
    figures = {"recipients": recipients, **{name: int(sums[name] or 0) for name in COUNTS}}
    return {**figures, **_rates(figures)}


def report_basic(*, workspace: Workspace, campaign_id, run_id=None) -> dict:
    """The campaign's figures, over all its runs or one (`run_id`)."""
    campaign = report_campaign(workspace=workspace, campaign_id=campaign_id, run_id=run_id)
    runs = RunReport.objects.filter(workspace=workspace, campaign_id=campaign.pk)
    run_rows = CampaignRun.objects.filter(workspace=workspace, campaign=campaign)
    if run_id is not None:
        runs, run_rows = runs.filter(run_id=run_id), run_rows.filter(pk=run_id)
    recipients = run_rows.aggregate(n=Sum("total"))["n"] or 0
    return {
        "campaign_id": str(campaign.pk),
        "run_id": str(run_id) if run_id is not None else None,
        **_figures(runs=runs, recipients=recipients),
    }


def report_runs(*, workspace: Workspace, campaign: Campaign) -> list[dict]:
    """Each run's figures, newest first (a recurring campaign's report per run)."""
    result = []
    for run in CampaignRun.objects.filter(workspace=workspace, campaign=campaign).order_by("-due_at"):
        figures = _figures(runs=RunReport.objects.filter(run_id=run.pk), recipients=run.total)
        result.append({"run_id": str(run.pk), "due_at": run.due_at, "status": run.status, **figures})
    return result


def report_links(*, workspace: Workspace, campaign_id, run_id=None) -> dict:
    """Clicks per URL, most clicked first (ties by URL). Summed over runs; a recipient who clicked the same
    URL in two runs of a recurring campaign counts once in each."""
    campaign = report_campaign(workspace=workspace, campaign_id=campaign_id, run_id=run_id)
    links = LinkReport.objects.filter(campaign_id=campaign.pk)
    if run_id is not None:
        links = links.filter(run_id=run_id)
    rows = links.values("url").annotate(clicks_=Sum("clicks"), unique_=Sum("unique_clicks")).order_by("-clicks_", "url")
    return {
        "campaign_id": str(campaign.pk),
        "links": [{"url": row["url"], "clicks": row["clicks_"], "unique_clicks": row["unique_"]} for row in rows],
    }


def report_open_time(*, workspace: Workspace, campaign_id, zone: str, run_id=None) -> dict:
    """Human opens by local hour of day and by local weekday (0 = Monday) and hour, in `zone`. Each stored
    quarter hour is converted on its own, so a DST change inside the period moves exactly the opens after
    it."""
    campaign = report_campaign(workspace=workspace, campaign_id=campaign_id, run_id=run_id)
    tz = ZoneInfo(zone)
    slots = OpenSlot.objects.filter(campaign_id=campaign.pk)
    if run_id is not None:
        slots = slots.filter(run_id=run_id)
    by_hour = [0] * 24
    by_day_hour = [[0] * 24 for _ in range(7)]
    for slot, opens in slots.values("slot").annotate(n=Sum("opens")).values_list("slot", "n"):
        local = slot.astimezone(tz)
        by_hour[local.hour] += opens
        by_day_hour[local.weekday()][local.hour] += opens
    return {"campaign_id": str(campaign.pk), "timezone": zone, "by_hour": by_hour, "by_day_hour": by_day_hour}


def _group(*, workspace: Workspace, campaigns: QuerySet[Campaign]) -> dict:
    ids = list(campaigns.values_list("pk", flat=True))
    recipients = CampaignRun.objects.filter(workspace=workspace, campaign_id__in=ids).aggregate(n=Sum("total"))["n"]
    figures = _figures(
        runs=RunReport.objects.filter(workspace=workspace, campaign_id__in=ids), recipients=recipients or 0
    )
    return {"campaigns": len(ids), **figures}


def report_label(*, workspace: Workspace, label_id: str) -> dict:
    """The figures summed over every campaign of the workspace with this label (its id or its name)."""
    try:
        by = {"pk": UUID(str(label_id))}
    except ValueError:
        by = {"name": label_id}
    label = Label.objects.filter(workspace=workspace, **by).first()
    if label is None:
        raise errors.NotFound("No such label in this workspace.")
    campaigns = Campaign.objects.filter(workspace=workspace, labels=label)
    return {"label": str(label.pk), **_group(workspace=workspace, campaigns=campaigns)}


def report_category(*, workspace: Workspace, category: str) -> dict:
    """The figures summed over every campaign of the workspace in this category."""
    campaigns = Campaign.objects.filter(workspace=workspace, category=category)
    return {"category": category, **_group(workspace=workspace, campaigns=campaigns)}


def report_rates_for(*, campaigns: list[Campaign]) -> dict:
    """Open and click rates of many campaigns at once (the admin's campaign list): {id: (open, click)}."""
    ids = [campaign.pk for campaign in campaigns]
    rows = (
        RunReport.objects.filter(campaign_id__in=ids)
        .values("campaign_id")
        .annotate(sent_=Sum("sent"), opens_=Sum("unique_opens"), clicks_=Sum("unique_clicks"))
    )
    return {
        row["campaign_id"]: (
            row["opens_"] / row["sent_"] if row["sent_"] else 0.0,
            row["clicks_"] / row["sent_"] if row["sent_"] else 0.0,
        )
        for row in rows
    }


def report_delivery_status_counts(*, campaign: Campaign) -> dict[str, int]:
    """Deliveries of the campaign by status: the admin report's progress while it is sending."""
    rows = Delivery.objects.filter(campaign_id=campaign.pk).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def report_aggregation_lag(*, now: datetime) -> dict:
    """How far behind the figures run: the events not counted yet and how old the oldest of them is. Two
    index range reads (above the cursor by primary key, and the held-back ids), never a scan."""
    state = AggregationState.objects.filter(pk=1).first()
    last = state.last_event_id if state else 0
    newer = Event.objects.filter(id__gt=last)
    held = Event.objects.filter(id__in=PendingEvent.objects.values("event_id"))
    oldest = [
        value
        for value in (newer.order_by("id").values_list("occurred_at", flat=True).first(),
                      held.order_by("occurred_at").values_list("occurred_at", flat=True).first())
        if value is not None
    ]  # fmt: skip
    return {
        "last_event_id": last,
        "uncounted": newer.count() + held.count(),
        "oldest_uncounted_seconds": max(0.0, (now - min(oldest)).total_seconds()) if oldest else 0.0,
    }


def report_export_get(*, workspace: Workspace, export_id) -> ReportExport:
    export = ReportExport.objects.filter(workspace=workspace, pk=export_id).first()
    if export is None:
        raise errors.NotFound("No such export in this workspace.")
    return export
