from django.apps import AppConfig


class TransactionalConfig(AppConfig):
    name = "transactional"

    def ready(self) -> None:
        from common.metrics import register_scrape_collector
        from transactional.metrics import due_unclaimed

        register_scrape_collector(due_unclaimed)
