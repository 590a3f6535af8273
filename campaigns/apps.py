from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        # The send path (delivery) sits below campaigns and learns about runs through these, never by
        # importing campaigns (docs/architecture.md, "Layers").
        from campaigns import receivers
        from campaigns.sources import CampaignRunSource
        from delivery import signals
        from delivery.sources import register_run_source

        register_run_source(CampaignRunSource())
        signals.deliveries_counted.connect(receivers.on_deliveries_counted, dispatch_uid="campaigns.counted")
        signals.run_deliveries_final.connect(receivers.on_run_deliveries_final, dispatch_uid="campaigns.final")
