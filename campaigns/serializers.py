from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audience.serializers import CountOutput  # noqa: F401 - one component for {"count": n}
from campaigns.models import Campaign, CampaignRun, Template
from campaigns.planning import REASON_CODES
from campaigns.selectors import campaign_summaries, campaign_upcoming_runs
from common.serializers import NullableObjectField, ObjectField, StrictInputSerializer, reject_nul


class TemplateInput(StrictInputSerializer):
    name = serializers.CharField(max_length=200, validators=[reject_nul])
    subject = serializers.CharField(max_length=998, allow_blank=True, default="", validators=[reject_nul])
    html = serializers.CharField(allow_blank=True, default="", trim_whitespace=False, validators=[reject_nul])
    text = serializers.CharField(allow_blank=True, default="", trim_whitespace=False, validators=[reject_nul])


class TemplateOutput(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = ["id", "name", "subject", "html", "text", "created_at", "updated_at"]
        read_only_fields = fields


# --- Campaigns ------------------------------------------------------------------------------------------


# Audience and tracking are parsed into their types here; their rules (at most AUDIENCE_MAX_IDS ids a list,
# a flag left out keeps its value) are campaigns.services.campaign_audience_clean / campaign_tracking_clean,
# which the admin form reaches through the same services.


class AudienceInput(StrictInputSerializer):
    include_labels = serializers.ListField(child=serializers.UUIDField(), required=False)
    exclude_labels = serializers.ListField(child=serializers.UUIDField(), required=False)
    include_segments = serializers.ListField(child=serializers.UUIDField(), required=False)
    exclude_segments = serializers.ListField(child=serializers.UUIDField(), required=False)


class TrackingInput(StrictInputSerializer):
    opens = serializers.BooleanField(required=False)
    clicks = serializers.BooleanField(required=False)


# "immediate" is a request only (send now, clear the schedule); a stored schedule is one of Campaign.ScheduleType.
SCHEDULE_TYPES_IN = ["immediate", *Campaign.ScheduleType.values]


@extend_schema_field({"type": "string", "enum": SCHEDULE_TYPES_IN})
class ScheduleTypeInField(serializers.CharField):
    """Text: campaigns.services.schedule_parse owns the rule and its message (docs/decisions/014)."""


@extend_schema_field({"type": "string", "enum": Campaign.ScheduleType.values})
class ScheduleTypeOutField(serializers.CharField):
    pass


def _object(value):
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be an object.")
    return reject_nul(value)


class ScheduleInput(StrictInputSerializer):
    """The schedule body of docs/architecture.md#campaigns. `scheduled_at` is text on purpose: DRF's DateTimeField would
    attach the server's zone to a naive value, the very guess §5 forbids; campaigns.scheduling parses it."""

    schedule_type = ScheduleTypeInField(
        required=False, help_text="Left out: scheduled if scheduled_at is given, recurring if recurring_config is."
    )
    scheduled_at = serializers.CharField(required=False, allow_null=True)
    timezone = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    recurring_config = NullableObjectField(required=False, allow_null=True)
    send_time_optimization = NullableObjectField(required=False, allow_null=True)
    recipient_local_time = serializers.BooleanField(required=False, default=False)
    # Scheduling policies: types only here; the ranges and shapes are campaigns.services.schedule_parse's.
    max_lateness_minutes = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="A run (or a recipient) not started within this many minutes of its due time is missed, "
        "not sent late.",
    )
    quiet_hours = NullableObjectField(
        required=False,
        allow_null=True,
        help_text='{"start": "21:00", "end": "08:00"} in each recipient\'s zone '
        "(the workspace's when the contact has none).",
    )
    only_new_recipients = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Recurring only: each run reaches only contacts no earlier run reached.",
    )

    def to_schedule_kwargs(self) -> dict:
        return schedule_kwargs(self.validated_data)


def schedule_kwargs(data: dict) -> dict:
    """A parsed schedule body as the keyword arguments of campaigns.services.schedule_parse."""
    return {
        "schedule_type": data.get("schedule_type"),
        "scheduled_at": data.get("scheduled_at"),
        "timezone_name": data.get("timezone"),
        "recurring_config": data.get("recurring_config"),
        "send_time_optimization": data.get("send_time_optimization"),
        "recipient_local_time": data.get("recipient_local_time", False),
        "max_lateness_minutes": data.get("max_lateness_minutes"),
        "quiet_hours": data.get("quiet_hours"),
        "only_new_recipients": data.get("only_new_recipients", False),
    }


class CampaignInput(StrictInputSerializer):
    """Writable campaign fields. status, counters, schedule bookkeeping and workspace are not among them."""

    name = serializers.CharField(max_length=200, validators=[reject_nul])
    subject = serializers.CharField(max_length=998, required=False, allow_blank=True, validators=[reject_nul])
    preheader = serializers.CharField(max_length=255, required=False, allow_blank=True, validators=[reject_nul])
    from_name = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[reject_nul])
    from_email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    reply_to = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    html = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, validators=[reject_nul])
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, validators=[reject_nul])
    template = serializers.UUIDField(required=False, allow_null=True)
    substitution_data = ObjectField(required=False, validators=[_object])
    category = serializers.CharField(max_length=100, required=False, allow_blank=True, validators=[reject_nul])
    labels = serializers.ListField(child=serializers.UUIDField(), required=False)
    audience = AudienceInput(required=False)
    tracking = TrackingInput(required=False)


class CampaignCreateInput(CampaignInput):
    """Create also takes a schedule: `scheduled_at` (+ `timezone`) at the top level, or a full `schedule`."""

    scheduled_at = serializers.CharField(required=False, allow_null=True)
    timezone = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    schedule = ScheduleInput(required=False, allow_null=True)

    def pop_schedule_kwargs(self) -> dict | None:
        data = self.validated_data
        scheduled_at = data.pop("scheduled_at", None)
        zone = data.pop("timezone", None)
        schedule = data.pop("schedule", None)
        if schedule is not None and scheduled_at is not None:
            raise serializers.ValidationError({"scheduled_at": ["Give scheduled_at or schedule, not both."]})
        if schedule is not None:
            return schedule_kwargs(schedule)
        if scheduled_at is not None:
            return {"schedule_type": "scheduled", "scheduled_at": scheduled_at, "timezone_name": zone}
        return None


class WarningOutput(serializers.Serializer):
    code = serializers.ChoiceField(choices=["spf", "dmarc", "complaint_rate"])
    message = serializers.CharField()


class ReadinessOutput(serializers.Serializer):
    can_send = serializers.BooleanField()
    missing = serializers.ListField(child=serializers.CharField())
    warnings = WarningOutput(many=True, help_text="What may hurt delivery without stopping the send.")


class ProgressOutput(serializers.Serializer):
    total = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField(help_text="Not sent: the campaign was stopped, or the recipient was missed.")
    pending = serializers.IntegerField()


class ScheduleOutput(serializers.Serializer):
    schedule_type = ScheduleTypeOutField()
    scheduled_at = serializers.DateTimeField(allow_null=True)
    timezone = serializers.CharField(allow_blank=True)
    recurring_config = NullableObjectField(allow_null=True)
    send_time_optimization = NullableObjectField(allow_null=True)
    recipient_local_time = serializers.BooleanField()
    max_lateness_minutes = serializers.IntegerField(allow_null=True)
    quiet_hours = NullableObjectField(allow_null=True)
    only_new_recipients = serializers.BooleanField()


class CampaignOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField()
    subject = serializers.CharField()
    preheader = serializers.CharField()
    from_name = serializers.CharField()
    from_email = serializers.CharField()
    reply_to = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()
    template = serializers.UUIDField(source="template_id", allow_null=True)
    substitution_data = ObjectField()
    category = serializers.CharField()
    labels = serializers.SerializerMethodField()
    audience = serializers.JSONField()
    tracking = serializers.JSONField()
    schedule = serializers.SerializerMethodField()
    scheduled_at = serializers.DateTimeField(allow_null=True)
    next_run_at = serializers.DateTimeField(allow_null=True)
    upcoming_runs = serializers.SerializerMethodField()
    readiness = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    sandbox = serializers.BooleanField(help_text="Sent or scheduled with a sandbox key: nothing reaches a mail server.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_labels(self, campaign) -> list[str]:
        # A list page passes the page's label ids, read in one query (campaign_label_ids).
        label_ids = self.context.get("label_ids")
        if label_ids is not None:
            return label_ids.get(campaign.pk, [])
        return [str(label.pk) for label in campaign.labels.all()]

    @extend_schema_field(ScheduleOutput(allow_null=True))
    def get_schedule(self, campaign):
        if not campaign.schedule_type:
            return None
        # One ScheduleOutput for the whole page: building a serializer deep-copies its declared fields, which
        # was a fifth of a page of 50's CPU (bench/run api-cpu); to_representation is what .data calls.
        schedule = self.__dict__.get("_schedule_output")
        if schedule is None:
            schedule = self.__dict__["_schedule_output"] = ScheduleOutput()
        return schedule.to_representation(
            {
                "schedule_type": campaign.schedule_type,
                "scheduled_at": campaign.scheduled_at,
                "timezone": campaign.schedule_timezone,
                "recurring_config": campaign.recurring_config,
                "send_time_optimization": campaign.send_time_optimization,
                "recipient_local_time": campaign.recipient_local_time,
                "max_lateness_minutes": campaign.max_lateness_minutes,
                "quiet_hours": campaign.quiet_hours,
                "only_new_recipients": campaign.only_new_recipients,
            }
        )

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_upcoming_runs(self, campaign) -> list[str]:
        field = serializers.DateTimeField()
        return [field.to_representation(run) for run in campaign_upcoming_runs(campaign=campaign)]

    def _summary(self, campaign) -> dict:
        # A list page passes summaries computed for the whole page at once (campaign_summaries).
        summaries = self.context.setdefault("summaries", {})
        if campaign.pk not in summaries:
            summaries.update(campaign_summaries(workspace=campaign.workspace, campaigns=[campaign]))
        return summaries[campaign.pk]

    @extend_schema_field(ReadinessOutput)
    def get_readiness(self, campaign):
        return self._summary(campaign)["readiness"]

    @extend_schema_field(ProgressOutput)
    def get_progress(self, campaign):
        return self._summary(campaign)["progress"]


class PreviewOutput(serializers.Serializer):
    contact_id = serializers.UUIDField(allow_null=True)
    email = serializers.EmailField()
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


class SendPlanQuery(serializers.Serializer):
    email = serializers.EmailField(required=False, help_text="Narrow the sample to this recipient.")


class SendPlanRecipient(serializers.Serializer):
    email = serializers.EmailField()
    send_at = serializers.DateTimeField()
    reason_code = serializers.ChoiceField(choices=REASON_CODES)
    reason = serializers.CharField()
    reason_code = serializers.CharField(
        required=False, help_text="launch_time, recipient_local_time, send_time_optimization or quiet_hours."
    )
    status = serializers.CharField(required=False)


class SendPlanWarning(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[
            "throttle_exceeds_sto_window",
            "throttle_runs_into_quiet_hours",
            "audience_has_suppressed",
            "sending_domain_unverified",
            "spf",
            "dmarc",
            "complaint_rate",
        ]
    )
    message = serializers.CharField()


class SendPlanOutput(serializers.Serializer):
    source = serializers.ChoiceField(choices=["plan", "deliveries"])
    run_id = serializers.UUIDField(allow_null=True)
    total = serializers.IntegerField()
    per_hour = serializers.DictField(child=serializers.IntegerField())
    sample = SendPlanRecipient(many=True)
    projected_finish_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the last message should be handed off, from the throttles in force and the queue ahead.",
    )
    warnings = SendPlanWarning(many=True)


class CampaignRunOutput(serializers.ModelSerializer):
    class Meta:
        model = CampaignRun
        fields = [
            "id",
            "status",
            "trigger",
            "due_at",
            "occurrence_at",
            "launched_at",
            "finished_at",
            "total",
            "sent",
            "failed",
            "skipped",
            "cancelled",
            "sandbox",
            "failure_reason",
            "created_at",
        ]
        read_only_fields = fields
