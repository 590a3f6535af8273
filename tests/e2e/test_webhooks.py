"""Webhooks through the whole engine: a 1,000-recipient campaign sent by real bulk and default workers and
beat; every `email.sent` event reaches a real local HTTP receiver, signed, verified by the standardwebhooks
package, none lost. Prints the delivery rate to the receiver (measured here, not asserted)."""

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook

from campaigns.models import Campaign
from delivery.models import Event
from tests.e2e.conftest import wait_for
from tests.factories import WebhookEndpointFactory
from tests.receiver import Receiver
from webhooks.models import WebhookAttempt, WebhookMessage

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 1000


@pytest.mark.parametrize("rate", ["100", "0"], ids=["limited-100-per-s", "unlimited"])
def test_every_sent_event_of_a_1000_recipient_campaign_arrives_verified(engine_factory, make_mailing, rate):
    engine = engine_factory()
    engine.env["WEBHOOK_RATE_PER_ENDPOINT"] = rate
    for process in (engine.default, engine.bulk, engine.beat):
        process.env = engine.env
    with Receiver() as receiver:
        mailing = make_mailing(RECIPIENTS)
        endpoint = WebhookEndpointFactory(workspace=mailing.workspace, url=receiver.url, event_types=["email.sent"])
        engine.start()
        engine.wait_until_ready("default", "bulk")
        mailing.schedule_in(1)

        wait_for(lambda: mailing.refresh().status in Campaign.FINISHED, timeout=180, what="the campaign to send")
        wait_for(lambda: len(receiver.requests) >= RECIPIENTS, timeout=180, what="every webhook to arrive")
        time.sleep(1)  # a duplicate, if any, would come within a batch

    requests = list(receiver.requests)
    verifier = Webhook(endpoint.secret)
    payloads = [verifier.verify(r.body, r.headers) for r in requests]  # raises on any bad signature
    sent_events = set(
        Event.objects.filter(workspace=mailing.workspace, type=Event.Type.SENT).values_list("id", flat=True)
    )
    assert len(sent_events) == RECIPIENTS
    assert sorted(int(p["id"]) for p in payloads) == sorted(sent_events)  # each exactly once
    assert {p["data"]["email"] for p in payloads} == set(mailing.emails)
    assert all(json.loads(r.body)["type"] == "email.sent" for r in requests)
    assert WebhookMessage.objects.filter(endpoint=endpoint, status="succeeded").count() == RECIPIENTS
    assert WebhookAttempt.objects.filter(endpoint=endpoint).count() == len(requests) == RECIPIENTS

    arrivals = sorted(r.at for r in requests)
    span = arrivals[-1] - arrivals[0]
    print(
        f"\nwebhooks ({'rate limit ' + rate + '/s' if rate != '0' else 'no rate limit'}): {len(requests)} "
        f"in {span:.1f} s = {(len(requests) - 1) / span:.0f}/s to the receiver"
    )
    if rate != "0":
        assert (len(requests) - 1) / span <= float(rate) * 1.25  # the endpoint's limit held
