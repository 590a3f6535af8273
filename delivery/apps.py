from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self) -> None:
        from common.metrics import register_scrape_collector
        from delivery.metrics import due_unclaimed

        register_scrape_collector(due_unclaimed)
