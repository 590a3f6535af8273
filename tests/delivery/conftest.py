import pytest

from campaigns.models import Campaign
from tests.factories import CampaignFactory, CampaignRunFactory, ContactFactory, DeliveryFactory

HTML = (
    "<html><body><p>Hi {{ first_name }}</p>"
    '<a href="https://shop.example.com/sale?a=1&amp;b=2">Sale</a> '
    '<a href="mailto:help@example.com">Help</a></body></html>'
)


@pytest.fixture
def campaign(workspace):
    return CampaignFactory(
        workspace=workspace,
        status=Campaign.Status.SENDING,
        subject="Hi {{ first_name }}",
        preheader="Big sale for {{ first_name }}",
        html=HTML,
        text="Hi {{ first_name }}",
        tracking={"opens": True, "clicks": True},
    )


@pytest.fixture
def run(campaign):
    return CampaignRunFactory(campaign=campaign)


@pytest.fixture
def make_deliveries(run):
    def make(count: int = 1, **kwargs):
        deliveries = []
        for _ in range(count):
            contact = ContactFactory(workspace=run.workspace, **kwargs)
            deliveries.append(DeliveryFactory(run=run, contact=contact))
        run.total = run.total + count
        run.save(update_fields=["total"])
        return deliveries

    return make
