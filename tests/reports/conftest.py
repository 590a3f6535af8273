"""A hand-built campaign whose figures are known exactly (each number is worked out in the comments)."""

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from campaigns.models import Campaign, CampaignRun
from delivery.models import Delivery, Event
from reports.services import reports_aggregate
from tests.factories import CampaignRunFactory, DeliveryFactory, EventFactory

E = Event.Type
URL1, URL2 = "https://shop.example.com/sale", "https://shop.example.com/=cmd"
APPLE_MPP = "Mozilla/5.0"
PERSON = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Built:
    campaign: Campaign
    run: CampaignRun
    deliveries: dict[str, Delivery]


def build_known_campaign(workspace, *, status=Campaign.Status.SENT, domain: str = "example.org") -> Built:
    """Six recipients a-f; the run was sent to five (e bounced at hand-off, never `sent`).

    opens (human): a x2, b x1, d x1  -> opens 4;  machine: c x1, d x1 -> machine_opens 2
    clicks: a URL1 x2, a URL2 x1, b URL1 x1, c URL2 x1 -> clicks 5, unique_clicks 3 (a, b, c)
    unique_opens: a, b, d by a human open, c by its click (its only open was a machine's) -> 4
    unsubscribes: b -> 1; complaints: d -> 1; bounced: e -> 1; delivered: a, b -> 2
    rates: open 4/5, click 3/5, unsubscribe 1/5, bounce 1/(5 + 1)

    Human opens straddle the end of DST in New York (2026-11-01 06:00 UTC, 02:00 EDT -> 01:00 EST):
    a 10-31 13:10Z (Sat 09:10 EDT), a 11-02 14:20Z (Mon 09:20 EST), b 11-01 05:30Z (Sun 01:30 EDT),
    d 11-01 06:30Z (Sun 01:30 EST).
    """
    run = CampaignRunFactory(
        workspace=workspace, campaign__workspace=workspace, campaign__status=status, status="sent", total=6
    )
    campaign = run.campaign
    deliveries = {
        name: DeliveryFactory(run=run, contact__email=f"{name}@{domain}", status=Delivery.Status.SENT)
        for name in "abcdef"
    }
    deliveries["e"].status, deliveries["e"].error = Delivery.Status.BOUNCED, "550 5.1.1 no such user"
    deliveries["e"].save()

    def event(name: str, type: str, when: str, **data):
        d = deliveries[name]
        return EventFactory(
            workspace=workspace, type=type, occurred_at=at(when), email=d.email, delivery_id=d.pk,
            campaign_id=campaign.pk, run_id=run.pk, data=data,
        )  # fmt: skip

    for name in "abcdf":
        event(name, E.SENT, "2026-10-31T12:00:00")
    event("e", E.BOUNCED, "2026-10-31T12:00:01", reason="550 5.1.1 no such user")
    event("a", E.DELIVERED, "2026-10-31T12:00:02")
    event("b", E.DELIVERED, "2026-10-31T12:00:02")
    event("a", E.OPENED, "2026-10-31T13:10:00", user_agent=PERSON, machine=False)
    event("a", E.OPENED, "2026-11-02T14:20:00", user_agent=PERSON, machine=False)
    event("b", E.OPENED, "2026-11-01T05:30:00", user_agent=PERSON, machine=False)
    event("c", E.OPENED, "2026-10-31T12:00:05", user_agent=APPLE_MPP, machine=True)
    event("d", E.OPENED, "2026-10-31T12:00:05", user_agent=APPLE_MPP, machine=True)
    event("d", E.OPENED, "2026-11-01T06:30:00", user_agent=PERSON, machine=False)
    event("a", E.CLICKED, "2026-10-31T13:11:00", url=URL1)
    event("a", E.CLICKED, "2026-10-31T13:12:00", url=URL1)
    event("a", E.CLICKED, "2026-10-31T13:13:00", url=URL2)
    event("b", E.CLICKED, "2026-11-01T05:31:00", url=URL1)
    event("c", E.CLICKED, "2026-11-03T08:00:00", url=URL2)
    event("b", E.UNSUBSCRIBED, "2026-11-01T05:32:00")
    event("d", E.COMPLAINED, "2026-11-01T06:31:00")
    return Built(campaign=campaign, run=run, deliveries=deliveries)


@pytest.fixture
def known(workspace) -> Built:
    built = build_known_campaign(workspace)
    reports_aggregate()
    return built
