"""Throttles kept as data (delivery.models.Throttle, docs/decisions/062): the API, and what the real send path
(delivery_send_batch over SMTP to a real sink, buckets in real Redis) does with them. Time is moved with
time-machine (the buckets read time.time); nothing sleeps: DELIVERY_THROTTLE_MAX_WAIT_SECONDS is 0."""

from datetime import UTC, date, datetime, timedelta

import pytest
import redis
import time_machine
from django.conf import settings as django_settings

from delivery.models import Delivery, Event, Throttle
from delivery.services import delivery_send_batch
from delivery.throttle import SendThrottle
from tests.factories import ThrottleFactory

# After the rows the factories make (send_at = now), so every row is due inside the travels.
T0 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
URL = "/api/v1/throttles"


@pytest.fixture(autouse=True)
def _no_env_limits_and_no_sleep(settings):
    settings.DELIVERY_RATE_PER_WORKSPACE = None
    settings.DELIVERY_RATE_PER_DOMAIN = {}
    settings.DELIVERY_THROTTLE_MAX_WAIT_SECONDS = 0
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter("mailsched:backoff:*"):
        client.delete(key)


def ids(deliveries) -> list[int]:
    return [d.id for d in deliveries]


def sent(deliveries) -> int:
    return Delivery.objects.filter(pk__in=ids(deliveries), status=Delivery.Status.SENT).count()


def requeue(deliveries) -> None:
    """What the dispatcher's next tick finds: the deferred rows due again."""
    Delivery.objects.filter(pk__in=ids(deliveries), status=Delivery.Status.QUEUED).update(send_at=T0)


# --- the API --------------------------------------------------------------------------------------------


def test_a_throttle_is_created_listed_and_changed_through_the_api(api):
    created = api.post(URL, {"scope": "recipient_domain", "domain": "Gmail.com", "rate_per_second": 50}, format="json")
    assert created.status_code == 201, created.json()
    throttle_id = created.json()["id"]

    changed = api.patch(f"{URL}/{throttle_id}", {"rate_per_second": 20}, format="json")

    assert (changed.json()["domain"], changed.json()["rate_per_second"]) == ("gmail.com", 20.0)
    assert [row["id"] for row in api.get(URL).json()["results"]] == [throttle_id]


def test_a_sending_domain_throttle_takes_a_warmup_ramp(api):
    body = {
        "scope": "sending_domain",
        "domain": "mail.example.com",
        "warmup": {"started_on": "2026-12-01", "daily_caps": [50, 100, 200]},
    }

    response = api.post(URL, body, format="json")

    assert response.status_code == 201, response.json()
    assert (response.json()["rate_per_second"], response.json()["warmup"]) == (None, body["warmup"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "ip", "rate_per_second": 5}, "scope"),
        ({"scope": "workspace", "domain": "gmail.com", "rate_per_second": 5}, "domain"),
        ({"scope": "recipient_domain", "domain": "", "rate_per_second": 5}, "domain"),
        ({"scope": "recipient_domain", "domain": "https://gmail.com", "rate_per_second": 5}, "domain"),
        ({"scope": "workspace", "rate_per_second": 0}, "rate_per_second"),
        ({"scope": "workspace"}, "rate_per_second"),
        (
            {
                "scope": "recipient_domain",
                "domain": "gmail.com",
                "warmup": {"started_on": "2026-12-01", "daily_caps": [5]},
            },
            "warmup",
        ),
        (
            {
                "scope": "sending_domain",
                "domain": "mail.example.com",
                "warmup": {"started_on": "tomorrow", "daily_caps": [5]},
            },
            "warmup.started_on",
        ),
        (
            {
                "scope": "sending_domain",
                "domain": "mail.example.com",
                "warmup": {"started_on": "2026-12-01", "daily_caps": [0]},
            },
            "warmup.daily_caps",
        ),
    ],
)
def test_a_bad_throttle_is_a_400_naming_the_field(api, body, field):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not Throttle.objects.exists()


def test_a_second_throttle_for_the_same_domain_is_a_400_and_the_first_is_kept(api):
    api.post(URL, {"scope": "recipient_domain", "domain": "gmail.com", "rate_per_second": 50}, format="json")

    response = api.post(URL, {"scope": "recipient_domain", "domain": "gmail.com", "rate_per_second": 5}, format="json")

    assert (response.status_code, list(response.json()["error"]["details"])) == (400, ["domain"])
    assert list(Throttle.objects.values_list("rate_per_second", flat=True)) == [50.0]


def test_another_workspaces_throttle_is_a_404(api, other_workspace):
    theirs = ThrottleFactory(workspace=other_workspace)

    assert api.patch(f"{URL}/{theirs.id}", {"rate_per_second": 1}, format="json").status_code == 404


# --- the send path --------------------------------------------------------------------------------------


def test_a_workspace_throttle_holds_back_what_exceeds_its_rate(make_deliveries, sink, workspace):
    ThrottleFactory(workspace=workspace, scope=Throttle.Scope.WORKSPACE, domain="", rate_per_second=2)
    deliveries = make_deliveries(6)

    with time_machine.travel(T0, tick=False):
        result = delivery_send_batch(delivery_ids=ids(deliveries))

    assert (result.sent, result.deferred, len(sink.messages)) == (2, 4, 2)


def test_a_throttle_raised_through_the_api_reaches_the_next_batch_of_a_running_send(api, make_deliveries, sink):
    created = api.post(URL, {"scope": "workspace", "rate_per_second": 1}, format="json").json()
    deliveries = make_deliveries(10)
    with time_machine.travel(T0, tick=False):
        first = delivery_send_batch(delivery_ids=ids(deliveries))

    api.patch(f"{URL}/{created['id']}", {"rate_per_second": 1000}, format="json")
    requeue(deliveries)
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        second = delivery_send_batch(delivery_ids=ids(deliveries))

    assert (first.sent, second.sent, sent(deliveries)) == (1, 9, 10)


def test_a_recipient_domain_throttle_slows_only_that_domain(make_deliveries, sink, workspace):
    ThrottleFactory(workspace=workspace, domain="slow.example.org", rate_per_second=1)
    slow = make_deliveries(3, email=factory_emails("slow.example.org", 3))
    fast = make_deliveries(3)

    with time_machine.travel(T0, tick=False):
        delivery_send_batch(delivery_ids=ids(slow) + ids(fast))

    assert (sent(slow), sent(fast)) == (1, 3)


def test_a_sending_domain_throttle_applies_to_mail_from_that_domain(make_deliveries, sink, workspace):
    ThrottleFactory(
        workspace=workspace, scope=Throttle.Scope.SENDING_DOMAIN, domain="mail.example.com", rate_per_second=2
    )
    deliveries = make_deliveries(5)

    with time_machine.travel(T0, tick=False):
        result = delivery_send_batch(delivery_ids=ids(deliveries))

    assert (result.sent, result.deferred) == (2, 3)


def test_a_warmup_ramp_caps_each_day_and_grows_the_next(make_deliveries, sink, workspace):
    ThrottleFactory(
        workspace=workspace,
        scope=Throttle.Scope.SENDING_DOMAIN,
        domain="mail.example.com",
        rate_per_second=None,
        warmup_started_on=date(2030, 1, 7),
        warmup_daily_caps=[2, 4],
    )
    deliveries = make_deliveries(8)

    with time_machine.travel(T0, tick=False):
        day1 = delivery_send_batch(delivery_ids=ids(deliveries))
    held_until = set(Delivery.objects.filter(pk__in=ids(deliveries), status="queued").values_list("send_at", flat=True))
    requeue(deliveries)
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        day2 = delivery_send_batch(delivery_ids=ids(deliveries))
    requeue(deliveries)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        day3 = delivery_send_batch(delivery_ids=ids(deliveries))

    assert (day1.sent, day2.sent, day3.sent) == (2, 4, 2)  # the ramp is over on day 3: no cap
    assert held_until == {datetime(2030, 1, 8, tzinfo=UTC)}  # held to the next UTC day, not retried all night


def test_a_domain_that_defers_gets_half_its_rate_and_a_deferred_event(make_deliveries, sink, workspace):
    ThrottleFactory(workspace=workspace, domain="slow.example.org", rate_per_second=8)
    sink.handler.reject_domains = {"slow.example.org": "451 4.7.1 Try again later"}
    [delivery] = make_deliveries(1, email=factory_emails("slow.example.org", 1))

    with time_machine.travel(T0, tick=False):
        delivery_send_batch(delivery_ids=[delivery.id])
        limits = SendThrottle().limits_for(workspace_id=workspace.id, email="x@slow.example.org")

    event = Event.objects.get(delivery_id=delivery.id)
    assert (event.type, "451" in event.data["reason"], "retry_at" in event.data) == ("deferred", True, True)
    assert [limit.rate for limit in limits] == [4.0]


def test_a_deferring_domain_recovers_its_rate_slowly(make_deliveries, sink, workspace):
    ThrottleFactory(workspace=workspace, domain="slow.example.org", rate_per_second=8)
    with time_machine.travel(T0, tick=False):
        SendThrottle().record_deferral(email="a@slow.example.org")
        SendThrottle().record_deferral(email="a@slow.example.org")

    rates = []
    for seconds in (0, 150, 600):
        with time_machine.travel(T0 + timedelta(seconds=seconds), tick=False):
            rates.append(SendThrottle().limits_for(workspace_id=workspace.id, email="a@slow.example.org")[0].rate)

    assert rates == [2.0, pytest.approx(4.0), 8.0]  # a quarter, then +1/600 of the rate a second, capped at whole


def factory_emails(domain: str, count: int):
    """Emails at one domain for make_deliveries' contacts (a factory sequence)."""
    import factory

    return factory.Sequence(lambda n: f"person{n}@{domain}")


def test_a_running_batch_reads_a_changed_throttle_once_its_copy_is_old(settings, workspace):
    settings.DELIVERY_THROTTLE_REFRESH_SECONDS = 0
    row = ThrottleFactory(workspace=workspace, scope=Throttle.Scope.WORKSPACE, domain="", rate_per_second=1)
    throttle = SendThrottle()
    before = throttle.limits_for(workspace_id=workspace.id, email="a@example.org")[0].rate

    Throttle.objects.filter(pk=row.pk).update(rate_per_second=300)

    assert (before, throttle.limits_for(workspace_id=workspace.id, email="a@example.org")[0].rate) == (1, 300)


def test_a_batch_reads_its_domains_backoff_factors_up_front_in_one_go(workspace):
    with time_machine.travel(T0, tick=False):
        SendThrottle().record_deferral(email="a@slow.example.org")
        throttle = SendThrottle()
        throttle.prefetch_backoff({"slow.example.org", "fine.example.org"})
        # Halved again elsewhere after the read: the batch keeps what it read until its copy is old.
        SendThrottle().record_deferral(email="a@slow.example.org")

        factors = [throttle.backoff_factor(d) for d in ("slow.example.org", "fine.example.org")]

    assert factors == [0.5, 1.0]
