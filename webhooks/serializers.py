from rest_framework import serializers

from webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from webhooks.services import SUBSCRIBABLE


class WebhookEndpointInput(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE), allow_empty=False, min_length=1,
        max_length=len(SUBSCRIBABLE),
        help_text="Dotted types (`email.sent`, `campaign.finished`) or `email.*`, `campaign.*`, `*`.",
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = serializers.BooleanField(
        required=False, help_text="false switches the endpoint off; true switches it on again and clears its failures."
    )


class WebhookEndpointOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "event_types", "status", "disabled_reason", "disabled_at",
                  "created_at", "updated_at"]


class WebhookEndpointCreatedOutput(WebhookEndpointOutput):
    secret = serializers.CharField(
        help_text="`whsec_` + base64: verify each request's `webhook-signature` with it. Shown only here."
    )

    class Meta(WebhookEndpointOutput.Meta):
        fields = [*WebhookEndpointOutput.Meta.fields, "secret"]


class WebhookMessageOutput(serializers.ModelSerializer):
    """A message queued for an endpoint (a test or a replay): the worker sends it within seconds."""

    class Meta:
        model = WebhookMessage
        fields = ["webhook_id", "type", "status", "attempts", "next_attempt_at", "payload"]


class WebhookAttemptOutput(serializers.ModelSerializer):
    webhook_id = serializers.CharField(source="message.webhook_id", help_text="The request's webhook-id header.")
    event_id = serializers.CharField(source="message.event_id", allow_null=True)
    event_type = serializers.CharField(source="message.type")
    message_status = serializers.ChoiceField(source="message.status", choices=WebhookMessage.Status.choices)

    class Meta:
        model = WebhookAttempt
        fields = ["id", "webhook_id", "event_id", "event_type", "trigger", "attempted_at", "status_code",
                  "succeeded", "duration_ms", "error", "response_body", "next_retry_at", "message_status"]
