from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.serializers import NullableObjectField, StrictInputSerializer, reject_nul
from delivery.models import Event, Throttle
from delivery.services import throttle_warmup


class StreamEventOutput(serializers.Serializer):
    """One event of the stream: one thing that happened to a message or a campaign (docs/architecture.md#events)."""

    id = serializers.CharField(help_text="Grows with time: a larger id happened later (or at the same time).")
    type = serializers.ChoiceField(choices=Event.Type.choices)
    occurred_at = serializers.DateTimeField()
    email = serializers.CharField(help_text="The recipient; empty on campaign lifecycle events.")
    message_id = serializers.CharField(
        help_text=(
            "A transactional message's message_id, or a campaign message's Message-ID header; empty before the "
            "message was composed and on campaign lifecycle events."
        )
    )
    campaign_id = serializers.UUIDField(allow_null=True)
    run_id = serializers.UUIDField(allow_null=True, help_text="The campaign run (one send of the campaign).")
    batch_id = serializers.UUIDField(allow_null=True, help_text="The transactional request the message came in.")
    data = serializers.DictField(
        help_text="By type: reason (bounced, failed, cancelled, deferred), retry_at (deferred), url (clicked), "
        "user_agent (opened, clicked, unsubscribed), detail (a sentence of the transactional message log)."
    )


@extend_schema_field({"type": "string", "enum": Throttle.Scope.values})
class ThrottleScopeField(serializers.CharField):
    """Text: delivery.services.throttle_clean owns the rule and its message (docs/decisions/014)."""


class ThrottleInput(StrictInputSerializer):
    """Types only; the rules are delivery.services.throttle_clean's."""

    scope = ThrottleScopeField(help_text="workspace, recipient_domain or sending_domain.")
    domain = serializers.CharField(
        required=False, allow_blank=True, default="", validators=[reject_nul], help_text="Blank for workspace."
    )
    rate_per_second = serializers.FloatField(required=False, allow_null=True, default=None)
    warmup = NullableObjectField(
        required=False,
        allow_null=True,
        default=None,
        help_text='Sending domains: {"started_on": "2026-12-01", "daily_caps": [50, 100, 200]}; after the last '
        "day, no cap.",
    )


class ThrottleOutput(serializers.Serializer):
    id = serializers.UUIDField()
    scope = ThrottleScopeField()
    domain = serializers.CharField()
    rate_per_second = serializers.FloatField(allow_null=True)
    warmup = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(NullableObjectField(allow_null=True))
    def get_warmup(self, throttle):
        return throttle_warmup(throttle)


class EngagementEventsInput(serializers.Serializer):
    """Rows are checked one by one by the service, so that a bad row is skipped with its reason."""

    events = serializers.ListField(
        child=serializers.JSONField(allow_null=True),  # a bad row (null included) is skipped with its reason
        min_length=1,
        max_length=10_000,
        allow_empty=False,
        help_text='[{"email", "type": "opened"|"clicked", "occurred_at": ISO 8601 with offset, "user_agent"}]',
    )


class SkippedRowOutput(serializers.Serializer):
    index = serializers.IntegerField()
    reason = serializers.CharField()


class EngagementImportOutput(serializers.Serializer):
    imported = serializers.IntegerField()
    skipped = SkippedRowOutput(many=True)
