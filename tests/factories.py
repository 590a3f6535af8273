"""All factories in one place (factory_boy)."""

import functools
from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import ApiKey, DkimKey, IdempotencyRecord, SendingDomain, Workspace
from audience.models import Contact, Label, Segment, Suppression
from campaigns.models import Campaign, CampaignRun, Template
from delivery.models import Delivery, Event, SendProgress, Throttle
from transactional.models import TransactionalMessage
from webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from webhooks.signing import new_secret


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    timezone = "UTC"


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    workspace = factory.SubFactory(WorkspaceFactory)
    prefix = factory.Sequence(lambda n: f"msk_{n:08x}")
    key_hash = factory.Sequence(lambda n: ApiKey.hash_key(f"factory-key-{n}"))


class IdempotencyRecordFactory(factory.django.DjangoModelFactory):
    """A key whose first request has answered (201 with a small body)."""

    class Meta:
        model = IdempotencyRecord

    workspace = factory.SubFactory(WorkspaceFactory)
    key = factory.Sequence(lambda n: f"key-{n}")
    request_hash = factory.Sequence(lambda n: f"{n:064x}")
    status = IdempotencyRecord.Status.DONE
    response_status = 201
    response_body = '{"id": "x"}'
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda record: record.created_at + timedelta(hours=24))


@functools.cache
def _dkim_key_material(index: int):
    # RSA generation costs tens of milliseconds: a few keys per test session, shared by the factories.
    from accounts.dkim_keys import generate_key

    return generate_key()


class DkimKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DkimKey

    class Params:
        material = factory.LazyAttributeSequence(lambda o, n: _dkim_key_material(n % 3))

    domain = None
    selector = factory.Sequence(lambda n: f"s{n}")
    status = DkimKey.Status.ACTIVE
    private_key_encrypted = factory.LazyAttribute(lambda o: o.material.private_key_encrypted)
    public_key = factory.LazyAttribute(lambda o: o.material.public_key)


class SendingDomainFactory(factory.django.DjangoModelFactory):
    """A domain with its signing key, as sending_domain_create makes it (dkim_key=False: one without)."""

    class Meta:
        model = SendingDomain
        skip_postgeneration_save = True

    workspace = factory.SubFactory(WorkspaceFactory)
    domain = factory.Sequence(lambda n: f"mail{n}.example.com")
    verification_token = factory.Sequence(lambda n: f"token{n:032d}")
    verified = False

    @factory.post_generation
    def dkim_key(obj, create, extracted, **kwargs):
        if create and extracted is not False:
            DkimKeyFactory(domain=obj, **kwargs)


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"label-{n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact
        skip_postgeneration_save = True

    workspace = factory.SubFactory(WorkspaceFactory)
    email = factory.Sequence(lambda n: f"person{n}@example.org")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    status = Contact.Status.SUBSCRIBED
    attributes = factory.LazyFunction(dict)

    @factory.post_generation
    def labels(self, create, extracted, **kwargs):
        if create and extracted:
            self.labels.set(extracted)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"segment-{n}")
    rules = factory.LazyFunction(lambda: {"all": [{"attribute": "country", "op": "eq", "value": "ID"}]})


class SuppressionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Suppression

    workspace = factory.SubFactory(WorkspaceFactory)
    email = factory.Sequence(lambda n: f"suppressed{n}@example.org")
    reason = Suppression.Reason.MANUAL


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Template

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"template-{n}")
    subject = "Hello {{ first_name }}"
    html = "<p>Hello {{ first_name }}</p>"
    text = "Hello {{ first_name }}"


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"campaign-{n}")
    status = Campaign.Status.DRAFT
    subject = "Hello {{ first_name }}"
    from_name = "News"
    from_email = "news@mail.example.com"
    html = "<p>Hello {{ first_name }}</p>"
    text = "Hello {{ first_name }}"


class CampaignRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CampaignRun

    campaign = factory.SubFactory(CampaignFactory, status=Campaign.Status.SENDING)
    workspace = factory.SelfAttribute("campaign.workspace")
    status = CampaignRun.Status.SENDING
    trigger = "now"
    due_at = factory.LazyFunction(timezone.now)


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    run = factory.SubFactory(CampaignRunFactory)
    campaign = factory.SelfAttribute("run.campaign")
    workspace = factory.SelfAttribute("run.workspace")
    contact = factory.SubFactory(ContactFactory, workspace=factory.SelfAttribute("..workspace"))
    email = factory.SelfAttribute("contact.email")
    send_at = factory.LazyFunction(timezone.now)


class SendProgressFactory(factory.django.DjangoModelFactory):
    """A send batch's progress row (pass the lease of its deliveries and the position it had reached)."""

    class Meta:
        model = SendProgress

    lease_until = factory.LazyFunction(lambda: timezone.now() + timedelta(seconds=60))


class EventFactory(factory.django.DjangoModelFactory):
    """An event row as the send path or tracking would write it; pass campaign_id/run_id or batch_id to
    attach it to a campaign or a transactional request (the references are plain ids, nothing is created)."""

    class Meta:
        model = Event

    workspace = factory.SubFactory(WorkspaceFactory)
    type = Event.Type.SENT
    occurred_at = factory.LazyFunction(timezone.now)
    email = factory.Sequence(lambda n: f"person{n}@example.org")
    message_id = factory.Sequence(lambda n: f"<{n}.event@mail.example.com>")
    data = factory.LazyFunction(dict)


class ThrottleFactory(factory.django.DjangoModelFactory):
    """A workspace's own limit for one recipient domain."""

    class Meta:
        model = Throttle

    workspace = factory.SubFactory(WorkspaceFactory)
    scope = Throttle.Scope.RECIPIENT_DOMAIN
    domain = factory.Sequence(lambda n: f"provider{n}.example.org")
    rate_per_second = 50.0


def sent_and_complained(workspace, *, sent: int, complaints: int, occurred_at=None) -> None:
    """`sent` events and `complained` events (as the ESP webhooks write them) of a workspace, in one INSERT."""
    at = occurred_at or timezone.now()

    def build(kind: str, count: int) -> list[Event]:
        return [EventFactory.build(workspace=workspace, type=kind, occurred_at=at) for _ in range(count)]

    Event.objects.bulk_create(build(Event.Type.SENT, sent) + build(Event.Type.COMPLAINED, complaints))


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    """An enabled endpoint subscribed to everything, with a fresh Standard Webhooks secret."""

    class Meta:
        model = WebhookEndpoint

    workspace = factory.SubFactory(WorkspaceFactory)
    url = "http://127.0.0.1:9/hooks"
    event_types = factory.LazyFunction(lambda: ["*"])
    secret = factory.LazyFunction(new_secret)


class WebhookMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookMessage

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    webhook_id = factory.Sequence(lambda n: f"evt_{n}")
    type = "email.sent"
    payload = factory.LazyAttribute(lambda m: {"id": m.webhook_id, "type": m.type, "data": {}})
    created_at = factory.LazyFunction(timezone.now)
    next_attempt_at = factory.LazyFunction(timezone.now)
    retry_until = factory.LazyAttribute(lambda m: m.created_at + timedelta(days=3))


class WebhookAttemptFactory(factory.django.DjangoModelFactory):
    """A successful attempt of a message of the endpoint."""

    class Meta:
        model = WebhookAttempt

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    message = factory.SubFactory(WebhookMessageFactory, endpoint=factory.SelfAttribute("..endpoint"))
    attempted_at = factory.LazyFunction(timezone.now)
    status_code = 200
    succeeded = True


class TransactionalMessageFactory(factory.django.DjangoModelFactory):
    """A transactional message already handed to the mail server (`sent`), with its Message-ID header."""

    class Meta:
        model = TransactionalMessage

    workspace = factory.SubFactory(WorkspaceFactory)
    batch_id = factory.Faker("uuid4", cast_to=None)
    priority = TransactionalMessage.Priority.HIGH
    status = TransactionalMessage.Status.SENT
    from_email = "alerts@mail.example.com"
    to_email = factory.Sequence(lambda n: f"customer{n}@example.org")
    subject = "Your receipt"
    text = "Thanks"
    send_at = factory.LazyFunction(timezone.now)
    sent_at = factory.LazyFunction(timezone.now)
    smtp_message_id = factory.Sequence(lambda n: f"<tx-{n:032x}@mail.example.com>")
