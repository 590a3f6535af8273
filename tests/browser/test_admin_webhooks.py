"""Webhook endpoints as an operator sees them: the endpoint with its recent attempts, the attempt log and its
replay action. Screenshots go to artifacts/screenshots/."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_admin_flows import _log_in
from tests.factories import EventFactory, WebhookEndpointFactory, WorkspaceFactory
from tests.receiver import Receiver, Script
from tests.webhooks.conftest import deliver
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_an_operator_sees_attempts_and_replays_one(page, live_server, django_user_model, screenshot, settings):
    settings.WEBHOOK_SETTLE_MAX_SECONDS = 0
    workspace = WorkspaceFactory(name="Acme")
    with Receiver() as receiver:
        endpoint = WebhookEndpointFactory(workspace=workspace, url=receiver.url, description="CRM sync")
        gone = WebhookEndpointFactory(workspace=workspace, url="http://127.0.0.1:9/old")
        WebhookEndpoint.objects.filter(pk=gone.pk).update(
            status="disabled", disabled_reason="The receiver answered 410 Gone."
        )
        for _ in range(3):
            EventFactory(workspace=workspace)
        receiver.answer(Script(status=500))
        deliver(endpoint)

        _log_in(page, live_server, django_user_model)
        page.goto(f"{live_server.url}/admin/webhooks/webhookendpoint/")
        expect(page.locator(".messagelist")).to_contain_text("webhook.disabled")
        screenshot("40-admin-webhook-endpoints")

        page.goto(f"{live_server.url}/admin/webhooks/webhookendpoint/{endpoint.pk}/change/")
        expect(page.locator("body")).to_contain_text("500")
        screenshot("41-admin-webhook-endpoint-attempts")

        page.goto(f"{live_server.url}/admin/webhooks/webhookattempt/")
        page.locator("#result_list tbody input[type=checkbox]").first.check()
        page.select_option("select[name=action]", "replay")
        page.click("button[name=index]")
        expect(page.locator(".messagelist")).to_contain_text("queued again")
        screenshot("42-admin-webhook-replay")
    assert WebhookMessage.objects.filter(next_trigger="replay").count() == 1
