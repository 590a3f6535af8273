"""What campaigns does when the send path reports (delivery.signals); connected in campaigns.apps."""

from campaigns.services import campaign_run_count, campaign_run_deliveries_final


def on_deliveries_counted(sender, *, run_id, counts, **kwargs) -> None:
    campaign_run_count(run_id=run_id, counts=counts)


def on_run_deliveries_final(sender, *, run_id, **kwargs) -> None:
    campaign_run_deliveries_final(run_id=run_id)
