"""Campaign runs as the send path sees them (delivery.sources.RunSource), registered in campaigns.apps."""

from collections.abc import Iterable
from uuid import UUID

from django.db.models import Q, QuerySet

from campaigns.models import Campaign, CampaignRun
from campaigns.selectors import campaign_message_content
from common.quiet_hours import QuietHours
from delivery.content import MessageContent
from delivery.sources import RunPolicy

R = CampaignRun.Status


class CampaignRunSource:
    def claimable_run_ids(self) -> QuerySet:
        # The campaign sending and the run neither paused nor cancelled (a pause holds both).
        return (
            CampaignRun.objects.filter(campaign__status=Campaign.Status.SENDING)
            .exclude(status__in=[R.PAUSED, R.CANCELLED])
            .values("id")
        )

    def dispatchable_run_ids(self) -> QuerySet:
        return CampaignRun.objects.filter(
            status__in=[R.SENDING, R.FANNING_OUT],
            campaign__status__in=[Campaign.Status.SENDING, Campaign.Status.SCHEDULED],
        ).values("id")

    def stopped_run_ids(self) -> QuerySet:
        return CampaignRun.objects.filter(Q(status=R.CANCELLED) | Q(campaign__status=Campaign.Status.CANCELLED)).values(
            "id"
        )

    def contents(self, run_ids: Iterable[UUID]) -> dict[UUID, MessageContent]:
        runs = CampaignRun.objects.filter(pk__in=list(run_ids)).select_related("campaign__template")
        by_campaign: dict = {}
        out = {}
        for run in runs:
            if run.campaign_id not in by_campaign:
                by_campaign[run.campaign_id] = campaign_message_content(campaign=run.campaign)
            out[run.pk] = by_campaign[run.campaign_id]
        return out

    def policies(self, run_ids: Iterable[UUID]) -> dict[UUID, RunPolicy]:
        rows = CampaignRun.objects.filter(pk__in=list(run_ids)).values_list(
            "pk", "campaign__max_lateness_minutes", "campaign__quiet_hours"
        )
        return {
            pk: RunPolicy(max_lateness_minutes=lateness, quiet_hours=QuietHours.from_dict(quiet))
            for pk, lateness, quiet in rows
            if lateness is not None or quiet
        }
