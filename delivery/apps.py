from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self) -> None:
        from anymail.signals import tracking

        from delivery import receivers

        tracking.connect(receivers.on_anymail_tracking, dispatch_uid="delivery.anymail_tracking")
        from common.metrics import register_scrape_collector
        from delivery.metrics import due_unclaimed

        register_scrape_collector(due_unclaimed)
