from django.apps import AppConfig


class TransactionalConfig(AppConfig):
    name = "transactional"

    def ready(self) -> None:
        # An ESP's delivered/bounced report reaches the message through delivery, which sits below this app.
        from delivery import signals
        from delivery.sources import register_message_source
        from transactional import receivers
        from transactional.services import TransactionalMessageSource

        register_message_source(TransactionalMessageSource())
        signals.esp_event_recorded.connect(receivers.on_esp_event_recorded, dispatch_uid="transactional.esp")
        from common.metrics import register_scrape_collector
        from transactional.metrics import due_unclaimed

        register_scrape_collector(due_unclaimed)
