from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self) -> None:
        from anymail.signals import tracking

        from delivery import receivers

        tracking.connect(receivers.on_anymail_tracking, dispatch_uid="delivery.anymail_tracking")
