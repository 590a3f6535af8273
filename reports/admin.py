"""The report page of a campaign in the admin, and open and click rates in the campaign list.

The campaign admin lives in `campaigns`, below this app, so it cannot show reports itself: this module
extends it (a subclass registered in its place) with one list column pair, one URL and a link to it."""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import FloatField, OuterRef, Subquery, Sum
from django.db.models.functions import Cast
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from campaigns.admin import CampaignAdmin
from campaigns.models import Campaign
from campaigns.selectors import campaign_progress
from common.timezones import is_valid_timezone
from reports import charts, selectors
from reports.models import ReportExport, RunReport


def _sum_of(field: str):
    rows = RunReport.objects.filter(campaign_id=OuterRef("pk")).values("campaign_id").annotate(n=Sum(field))
    return Subquery(rows.values("n")[:1])


def _percent(value) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


class ReportingCampaignAdmin(CampaignAdmin):
    list_display = [*CampaignAdmin.list_display, "open_rate", "click_rate"]

    def get_queryset(self, request):
        # The rates of the whole page in its one query: unique counts over sent, from the rollups.
        sent = Cast(_sum_of("sent"), FloatField())
        return (
            super()
            .get_queryset(request)
            .annotate(report_sent=sent, report_opens=_sum_of("unique_opens"), report_clicks=_sum_of("unique_clicks"))
        )

    @admin.display(description="open rate")
    def open_rate(self, obj):
        sent = getattr(obj, "report_sent", None)
        return _percent(obj.report_opens / sent if sent else None)

    @admin.display(description="click rate")
    def click_rate(self, obj):
        sent = getattr(obj, "report_sent", None)
        return _percent(obj.report_clicks / sent if sent else None)

    def get_urls(self):
        report = path(
            "<path:object_id>/report/", self.admin_site.admin_view(self.report_view), name="campaigns_campaign_report"
        )
        return [report, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "report_url": reverse("admin:campaigns_campaign_report", args=[object_id]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def report_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        workspace = campaign.workspace
        zone = request.GET.get("timezone") or workspace.timezone or "UTC"
        if not is_valid_timezone(zone):
            zone = "UTC"
        open_time = selectors.report_open_time(workspace=workspace, campaign_id=campaign.pk, zone=zone)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Report: {campaign.name}",
            "campaign": campaign,
            "basic": selectors.report_basic(workspace=workspace, campaign_id=campaign.pk),
            "runs": selectors.report_runs(workspace=workspace, campaign=campaign),
            "links": selectors.report_links(workspace=workspace, campaign_id=campaign.pk)["links"],
            "chart": charts.opens_by_hour_svg(open_time["by_hour"], zone=zone),
            "zone": zone,
            "sending": campaign.status in (Campaign.Status.SENDING, Campaign.Status.PAUSED),
            "progress": campaign_progress(campaign=campaign),
            "deliveries": selectors.report_delivery_status_counts(campaign=campaign),
            "lag": selectors.report_aggregation_lag(now=timezone.now()),
            "change_url": reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
        }
        return TemplateResponse(request, "admin/reports/campaign_report.html", context)


@admin.register(ReportExport)
class ReportExportAdmin(admin.ModelAdmin):
    list_display = ["id", "workspace", "campaign_id", "status", "rows", "created_at", "expires_at"]
    list_filter = ["status", "workspace"]
    readonly_fields = [f.name for f in ReportExport._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


admin.site.unregister(Campaign)
admin.site.register(Campaign, ReportingCampaignAdmin)
