from django.urls import reverse
from rest_framework import serializers

from common import timerules
from common.serializers import StrictInputSerializer, reject_nul
from common.timezones import is_valid_timezone
from reports.models import ReportExport


class ReportQuery(StrictInputSerializer):
    campaign_id = serializers.UUIDField()
    run_id = serializers.UUIDField(required=False, help_text="One run of a recurring campaign; all runs without it.")


class OpenTimeQuery(ReportQuery):
    timezone = serializers.CharField(
        max_length=64, default="UTC", help_text="IANA zone the hours are counted in (default UTC)."
    )

    def validate_timezone(self, value: str) -> str:
        if not is_valid_timezone(value):
            raise serializers.ValidationError(timerules.zone_error(value))
        return value


class LabelQuery(StrictInputSerializer):
    label = serializers.CharField(max_length=100, validators=[reject_nul], help_text="A label's id or name.")


class CategoryQuery(StrictInputSerializer):
    category = serializers.CharField(max_length=100, validators=[reject_nul])


class ReportExportInput(ReportQuery):
    """The body of POST reports/export: the same two fields as a report's query."""


class _Figures(serializers.Serializer):
    recipients = serializers.IntegerField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    bounced = serializers.IntegerField()
    failed = serializers.IntegerField()
    opens = serializers.IntegerField(help_text="Human opens; machine opens are in machine_opens.")
    machine_opens = serializers.IntegerField(help_text="Opens by privacy proxies and scanners, not in any rate.")
    unique_opens = serializers.IntegerField(help_text="Recipients with a human open or a click.")
    clicks = serializers.IntegerField()
    unique_clicks = serializers.IntegerField()
    unsubscribes = serializers.IntegerField()
    complaints = serializers.IntegerField()
    open_rate = serializers.FloatField(help_text="unique_opens / sent, 0 to 1.")
    click_rate = serializers.FloatField(help_text="unique_clicks / sent, 0 to 1.")
    bounce_rate = serializers.FloatField(help_text="bounced / (sent + bounced), 0 to 1.")
    unsubscribe_rate = serializers.FloatField(help_text="unsubscribes / sent, 0 to 1.")


class ReportBasicOutput(_Figures):
    campaign_id = serializers.UUIDField()
    run_id = serializers.UUIDField(allow_null=True)


class _Link(serializers.Serializer):
    url = serializers.CharField()
    clicks = serializers.IntegerField()
    unique_clicks = serializers.IntegerField()


class ReportLinkOutput(serializers.Serializer):
    campaign_id = serializers.UUIDField()
    links = _Link(many=True)


class ReportOpenTimeOutput(serializers.Serializer):
    campaign_id = serializers.UUIDField()
    timezone = serializers.CharField()
    by_hour = serializers.ListField(child=serializers.IntegerField(), help_text="24 counts, local hour 0-23.")
    by_day_hour = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="7 lists (Monday first) of 24 counts.",
    )


class ReportLabelOutput(_Figures):
    label = serializers.UUIDField(help_text="The label's id.")
    campaigns = serializers.IntegerField()


class ReportCategoryOutput(_Figures):
    category = serializers.CharField()
    campaigns = serializers.IntegerField()


class ReportExportOutput(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ReportExport
        fields = [
            "id",
            "status",
            "campaign_id",
            "run_id",
            "rows",
            "error",
            "created_at",
            "finished_at",
            "expires_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, export: ReportExport) -> str | None:
        if export.status != ReportExport.Status.DONE:
            return None
        return self.context["request"].build_absolute_uri(reverse("report-export-download", args=[export.pk]))
