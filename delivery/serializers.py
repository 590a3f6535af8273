from rest_framework import serializers

from delivery.models import Event


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
