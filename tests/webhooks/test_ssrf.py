"""The SSRF guard at creation and at each attempt. DNS is outside the project: the resolver seam
(webhooks.ssrf.resolve) is the one thing replaced."""

import pytest

from tests.factories import EventFactory, WebhookEndpointFactory
from tests.webhooks.conftest import deliver
from webhooks import ssrf
from webhooks.models import WebhookAttempt, WebhookEndpoint

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"


@pytest.fixture(autouse=True)
def guard_on(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False


@pytest.fixture
def dns(monkeypatch):
    answers: dict[str, list[str]] = {}

    def resolve(host, port):
        if host not in answers:
            raise ssrf.UnsafeUrl(f"The host {host} could not be resolved.")
        return answers[host]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    return answers


def create(api, url):
    return api.post("/api/v1/webhooks", {"url": url, "event_types": ["*"]}, format="json")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://0.0.0.0/hook",
        "http://192.168.1.20/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_an_address_of_this_machine_or_its_network_is_refused(api, url, dns):
    response = create(api, url)

    assert response.status_code == 400
    assert "url" in response.json()["error"]["details"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1"])
def test_a_hostname_resolving_to_a_private_address_is_refused(api, dns, address):
    dns["hooks.example.net"] = [address]

    response = create(api, "https://hooks.example.net/in")

    assert response.status_code == 400
    assert address in response.json()["error"]["details"]["url"][0]


def test_one_private_answer_among_public_ones_is_refused(api, dns):
    dns["hooks.example.net"] = [PUBLIC, "10.0.0.7"]

    assert create(api, "https://hooks.example.net/in").status_code == 400


def test_a_public_hostname_is_accepted(api, dns):
    dns["hooks.example.net"] = [PUBLIC]

    assert create(api, "https://hooks.example.net/in").status_code == 201


def test_a_hostname_that_does_not_resolve_is_a_400(api, dns):
    response = create(api, "https://nowhere.example.net/in")

    assert response.status_code == 400
    assert "could not be resolved" in response.json()["error"]["details"]["url"][0]


def test_changing_the_url_to_a_private_one_is_refused(api, dns, workspace):
    endpoint = WebhookEndpointFactory(workspace=workspace, url="https://hooks.example.net/in")

    response = api.patch(f"/api/v1/webhooks/{endpoint.pk}", {"url": "http://169.254.169.254/"}, format="json")

    assert response.status_code == 400
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.example.net/in"


def test_a_name_rebound_to_loopback_after_creation_is_refused_at_the_attempt(api, dns, receiver, workspace):
    port = receiver.server.server_address[1]
    dns["rebind.example.net"] = [PUBLIC]
    created = create(api, f"http://rebind.example.net:{port}/hooks")
    assert created.status_code == 201
    dns["rebind.example.net"] = ["127.0.0.1"]  # the attacker's DNS now answers with this machine
    EventFactory(workspace=workspace)

    deliver(WebhookEndpoint.objects.get())

    assert receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "loopback" in attempt.error


def test_with_private_urls_allowed_a_local_receiver_gets_its_webhooks(api, receiver, workspace, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    assert create(api, receiver.url).status_code == 201
    EventFactory(workspace=workspace)

    deliver(WebhookEndpoint.objects.get())

    assert len(receiver.requests) == 1


def test_the_request_goes_to_the_address_that_was_checked(dns, receiver, workspace, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    port = receiver.server.server_address[1]
    dns["hooks.example.net"] = ["127.0.0.1"]
    endpoint = WebhookEndpointFactory(workspace=workspace, url=f"http://hooks.example.net:{port}/in")
    EventFactory(workspace=workspace)

    deliver(endpoint)

    (request,) = receiver.requests
    assert request.headers["host"] == f"hooks.example.net:{port}"
    assert request.path == "/in"


def test_a_url_with_a_password_is_refused(api, dns):
    dns["hooks.example.net"] = [PUBLIC]

    response = create(api, "https://user:pw@hooks.example.net/in")

    assert response.status_code == 400
    assert "password" in response.json()["error"]["details"]["url"][0]


def test_with_the_guard_off_creation_resolves_nothing(api, dns, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True  # `dns` knows no name: a lookup would fail

    assert create(api, "https://receiver.internal/in").status_code == 201
