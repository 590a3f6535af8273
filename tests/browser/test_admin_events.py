"""The event stream as an operator sees it in the admin: the event list after a real campaign send and a
transactional message, and the message's log on its page. Screenshots go to artifacts/screenshots/."""

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign
from delivery.services import delivery_send_batch
from tests.browser.test_admin_flows import _log_in
from tests.factories import CampaignFactory, CampaignRunFactory, DeliveryFactory, SendingDomainFactory
from transactional.models import TransactionalMessage
from transactional.services import transactional_message_send, transactional_send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_admin_lists_events_and_shows_a_transactional_log(page, live_server, django_user_model, screenshot, sink):
    campaign = CampaignFactory(status=Campaign.Status.SENDING, name="Spring launch")
    SendingDomainFactory(workspace=campaign.workspace, domain="mail.example.com", verified=True)
    run = CampaignRunFactory(campaign=campaign)
    deliveries = [DeliveryFactory(run=run) for _ in range(3)]
    sink.handler.reject[deliveries[0].email] = "550 5.1.1 No such user"
    delivery_send_batch(delivery_ids=[d.id for d in deliveries])
    accepted = transactional_send(
        workspace=campaign.workspace,
        priority="high",
        sender={"email": "alerts@mail.example.com"},
        to=[{"email": "ann@example.org"}],
        subject="Your receipt",
        text="Thanks.",
    )
    transactional_message_send(message_id=accepted.message_ids[0])

    _log_in(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/delivery/event/")
    expect(page.locator("#result_list")).to_contain_text("bounced")
    expect(page.locator("#result_list")).to_contain_text("campaign.finished")
    expect(page.locator("#result_list")).to_contain_text("ann@example.org")
    screenshot("20-admin-event-list")

    message = TransactionalMessage.objects.get()
    page.goto(f"{live_server.url}/admin/transactional/transactionalmessage/{message.pk}/change/")
    expect(page.locator("body")).to_contain_text("Accepted by the mail server")
    screenshot("21-admin-transactional-log")
