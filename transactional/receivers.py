"""What transactional mail hears from the delivery layer below it (docs/architecture.md, "Layers")."""

from transactional import services


def on_esp_event_recorded(sender, event, **kwargs) -> None:
    if event.batch_id is not None and event.message_id:
        services.transactional_message_esp_outcome(
            workspace_id=event.workspace_id, message_id=event.message_id, kind=event.type
        )
