"""Reports through the whole engine: beat and a real `default` worker count a real send's events, the sent
campaign becomes `reported`, and opens recorded after that keep moving its figures."""

import pytest

from campaigns.models import Campaign
from delivery.models import Delivery
from delivery.services import delivery_record_open
from reports import selectors
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PERSON = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
APPLE_MPP = "Mozilla/5.0"


def test_a_sent_campaign_is_reported_and_its_figures_follow_new_opens(engine, sink, make_mailing, settings):
    # The opens below come seconds after the hand-off, which the engagement rule counts as machine opens
    # (STO_MACHINE_OPEN_SECONDS); here only the user agent is to tell them apart.
    settings.STO_MACHINE_OPEN_SECONDS = 0
    mailing = make_mailing(8)
    mailing.schedule_in(1)
    wait_for(lambda: mailing.refresh().status == Campaign.Status.REPORTED, timeout=60, what="reported")

    def basic():
        return selectors.report_basic(workspace=mailing.workspace, campaign_id=mailing.campaign.pk)

    assert (basic()["recipients"], basic()["sent"], basic()["opens"]) == (8, 8, 0)
    deliveries = list(Delivery.objects.filter(campaign=mailing.campaign).order_by("id"))
    for delivery in deliveries[:3]:
        delivery_record_open(delivery_id=delivery.pk, user_agent=PERSON)
    for delivery in deliveries[3:5]:
        delivery_record_open(delivery_id=delivery.pk, user_agent=APPLE_MPP)

    figures = wait_for(
        lambda: (f := basic())["opens"] + f["machine_opens"] == 5 and f, timeout=30, what="the opens to be counted"
    )
    assert (figures["unique_opens"], figures["machine_opens"], figures["open_rate"]) == (3, 2, 0.375)
    assert mailing.refresh().status == Campaign.Status.REPORTED
