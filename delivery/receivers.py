"""django-anymail's tracking signal (its ESP webhooks at /anymail/<esp>/tracking/), connected in
DeliveryConfig.ready(): parse, then one service call."""

from delivery import esp_events, services


def on_anymail_tracking(sender, event, esp_name, **kwargs) -> None:
    interpreted = esp_events.interpret(event, esp_name)
    if interpreted is not None:
        services.esp_event_record(event=interpreted)
