"""Header injection (docs/decisions/013): line-break payloads through every way into a mail header.

Every entry point refuses them (400 VALIDATION_ERROR naming the field, or the import skips the row) and
stores nothing. Content that is rendered into a header at send time (a template's subject, substitution
data, contact attributes) cannot be refused at the door, because it is legitimate in a body: it goes through
the real send path to a real SMTP server, and each delivered message has exactly the headers of a clean
one sent in the same batch."""

import email.policy
import io
import json
from collections import Counter
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.utils import formataddr

import pytest
from django.core.mail import BadHeaderError, EmailMultiAlternatives

from audience.models import Contact, ContactImport
from campaigns.models import Campaign, CampaignRun, Template
from campaigns.services import template_create
from common.validators import SINGLE_LINE_MESSAGE
from delivery.models import Delivery
from delivery.services import delivery_send_batch
from tests import queues
from tests.factories import (
    CampaignFactory,
    CampaignRunFactory,
    ContactFactory,
    DeliveryFactory,
    LabelFactory,
    SendingDomainFactory,
)
from transactional.models import TransactionalMessage

pytestmark = pytest.mark.django_db

# CRLF, bare LF, bare CR, and VT (a line break once Python's `email` package re-serializes a message).
INJECTIONS = [
    "Shop\r\nReply-To: attacker@evil.example",
    "Shop\nBcc: victim@example.org",
    "Shop\rX-Injected: yes",
    "Shop\x0bX-Injected: yes",
]
# Django's validate_email refuses a raw CR or LF in an address, but lets a quoted local part hold a VT.
EMAIL_INJECTIONS = ["news@mail.example.com\r\nBcc: victim@example.org", '"news\x0bBcc"@mail.example.com']
FROM_EMAIL = "news@mail.example.com"


@pytest.fixture
def verified_domain(workspace):
    return SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)


@pytest.fixture
def campaign_payload(workspace, verified_domain):
    label = LabelFactory(workspace=workspace, name="customers")
    ContactFactory(workspace=workspace, labels=[label])
    return {
        "name": "Spring sale",
        "subject": "Hello {{ first_name }}",
        "from_name": "Acme",
        "from_email": FROM_EMAIL,
        "html": "<p>Hi {{ first_name }}</p>",
        "audience": {"include_labels": [str(label.id)]},
    }


def assert_400_naming(response, field: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"], error


def form_errors(response) -> dict:
    assert response.status_code == 200  # the form again, with its errors; not a redirect to a saved object
    return response.context["adminform"].form.errors


# --- API: campaigns -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", ["from_name", "subject"])
def test_campaign_create_refuses_a_line_break_in_a_header_field(api, campaign_payload, field, payload):
    response = api.post("/api/v1/campaigns", {**campaign_payload, field: payload}, format="json")
    assert_400_naming(response, field)
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("payload", EMAIL_INJECTIONS)
@pytest.mark.parametrize("field", ["from_email", "reply_to"])
def test_campaign_create_refuses_a_line_break_in_an_address_field(api, campaign_payload, field, payload):
    response = api.post("/api/v1/campaigns", {**campaign_payload, field: payload}, format="json")
    assert_400_naming(response, field)
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("payload", INJECTIONS)
def test_create_send_refuses_a_line_break_in_from_name_and_starts_nothing(api, campaign_payload, payload):
    response = api.post("/api/v1/campaigns/create-send", {**campaign_payload, "from_name": payload}, format="json")
    assert_400_naming(response, "from_name")
    assert (Campaign.objects.count(), CampaignRun.objects.count(), Delivery.objects.count()) == (0, 0, 0)


@pytest.mark.parametrize("field", ["from_name", "subject", "reply_to"])
def test_campaign_update_refuses_a_line_break_and_changes_nothing(api, workspace, field):
    campaign = CampaignFactory(workspace=workspace, reply_to="help@mail.example.com")
    before = getattr(campaign, field)
    value = EMAIL_INJECTIONS[1] if field == "reply_to" else INJECTIONS[0]
    response = api.patch(f"/api/v1/campaigns/{campaign.id}", {field: value}, format="json")
    assert_400_naming(response, field)
    campaign.refresh_from_db()
    assert getattr(campaign, field) == before


def test_template_create_refuses_a_line_break_in_the_subject(api):
    body = {"name": "Welcome", "subject": INJECTIONS[0], "html": "<p>Hi</p>"}
    assert_400_naming(api.post("/api/v1/templates", body, format="json"), "subject")
    assert not Template.objects.exists()


# --- API: contacts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_contact_create_refuses_a_line_break_in_a_name(api, field, payload):
    response = api.post("/api/v1/contacts", {"email": "eve@example.org", field: payload}, format="json")
    assert_400_naming(response, field)
    assert not Contact.objects.exists()


@pytest.mark.parametrize("payload", ["eve@example.org\r\nBcc: victim@example.org", '"eve\x0bBcc"@example.org'])
def test_contact_create_refuses_a_line_break_in_the_email(api, payload):
    assert_400_naming(api.post("/api/v1/contacts", {"email": payload}, format="json"), "email")
    assert not Contact.objects.exists()


def test_contact_update_refuses_a_line_break_and_changes_nothing(api, workspace):
    contact = ContactFactory(workspace=workspace, last_name="Lee")
    response = api.patch(f"/api/v1/contacts/{contact.id}", {"last_name": INJECTIONS[1]}, format="json")
    assert_400_naming(response, "last_name")
    contact.refresh_from_db()
    assert contact.last_name == "Lee"


# --- CSV import ---------------------------------------------------------------------------------------------


def test_csv_import_skips_rows_whose_name_or_email_is_not_one_line(
    api, workspace, django_capture_on_commit_callbacks
):
    queues.purge("imports")
    upload = io.BytesIO(
        b"email,first_name,last_name\r\n"
        b'eve@example.org,"Eve\r\nX-Injected: yes",Doe\r\n'
        b'mal@example.org,Mal,"Doe\rBcc: victim@example.org"\r\n'
        b'"""vt\x0bBcc""@example.org",Vee,Tee\r\n'
        b"ann@example.org,Ann,Lee\r\n"
    )
    upload.name = "contacts.csv"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/contacts/import", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    queues.run_queued("imports")
    result = ContactImport.objects.get()
    assert (result.status, result.created_count, result.error_count) == ("completed", 1, 3)
    assert [(e["email"], e["errors"]) for e in result.errors] == [
        ("eve@example.org", {"first_name": [SINGLE_LINE_MESSAGE]}),
        ("mal@example.org", {"last_name": [SINGLE_LINE_MESSAGE]}),
        ('"vt\x0bbcc"@example.org', {"email": [SINGLE_LINE_MESSAGE]}),
    ]
    assert list(Contact.objects.values_list("email", flat=True)) == ["ann@example.org"]


# --- admin forms --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_admin_contact_add_form_refuses_a_line_break_in_a_name(admin_client, workspace, field):
    data = {"workspace": str(workspace.pk), "email": "eve@example.org", "status": "subscribed", "attributes": "{}"}
    response = admin_client.post("/admin/audience/contact/add/", {**data, field: INJECTIONS[0]})
    assert form_errors(response)[field] == [SINGLE_LINE_MESSAGE]
    assert not Contact.objects.exists()


@pytest.mark.parametrize("field", ["from_name", "subject", "reply_to"])
def test_admin_campaign_add_form_refuses_a_line_break_in_a_header_field(admin_client, workspace, field):
    data = {
        "workspace": str(workspace.pk),
        "name": "Launch",
        "subject": "Hi",
        "from_name": "Acme",
        "from_email": FROM_EMAIL,
        "html": "<p>Hi</p>",
        "audience": json.dumps({}),
        "tracking": json.dumps({}),
    }
    value = EMAIL_INJECTIONS[1] if field == "reply_to" else INJECTIONS[0]
    response = admin_client.post("/admin/campaigns/campaign/add/", {**data, field: value})
    assert form_errors(response)[field] == [SINGLE_LINE_MESSAGE]
    assert not Campaign.objects.exists()


def test_admin_template_add_form_refuses_a_line_break_in_the_subject(admin_client, workspace):
    data = {"workspace": str(workspace.pk), "name": "Welcome", "subject": INJECTIONS[1], "html": "<p>Hi</p>"}
    response = admin_client.post("/admin/campaigns/template/add/", data)
    assert form_errors(response)["subject"] == [SINGLE_LINE_MESSAGE]
    assert not Template.objects.exists()


# --- API: transactional -------------------------------------------------------------------------------------


def transactional_body(**overrides) -> dict:
    return {
        "from": {"email": "alerts@mail.example.com", "name": "Alerts"},
        "to": [{"email": "ana@example.org", "name": "Ana"}],
        "subject": "Reset your password",
        "text": "Use this link.",
        **overrides,
    }


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("from.name", {"from": {"email": "alerts@mail.example.com", "name": INJECTIONS[0]}}),
        ("to[0].name", {"to": [{"email": "ana@example.org", "name": INJECTIONS[1]}]}),
        ("to[0].email", {"to": [{"email": '"ana\x0bBcc"@example.org'}]}),
        ("cc[0].name", {"cc": [{"email": "bo@example.org", "name": INJECTIONS[2]}]}),
        ("bcc[0].name", {"bcc": [{"email": "cy@example.org", "name": INJECTIONS[3]}]}),
        ("reply_to.name", {"reply_to": {"email": "help@example.org", "name": INJECTIONS[0]}}),
        ("subject", {"subject": INJECTIONS[0]}),
        ("headers.X-Ticket", {"headers": {"X-Ticket": "1\r\nBcc: victim@example.org"}}),
        ("headers.X-Ticket\r\nBcc", {"headers": {"X-Ticket\r\nBcc": "victim@example.org"}}),
    ],
)
def test_transactional_send_refuses_a_line_break_in_a_header_field(api, verified_domain, field, overrides):
    response = api.post("/api/v1/transactional?priority=high", transactional_body(**overrides), format="json")
    assert_400_naming(response, field)
    assert not TransactionalMessage.objects.exists()


# --- content rendered into the subject at send time ---------------------------------------------------------


def parse(received):
    return BytesParser(policy=email.policy.default).parsebytes(received.data)


def header_names(message) -> Counter:
    return Counter(name.lower() for name in message)


@pytest.fixture
def delivered(sink):
    """send(campaign, contacts) -> {recipient: parsed message}, through delivery_send_batch and a real SMTP
    server."""

    def send(campaign, contacts) -> dict:
        sink.handler.clear()
        run = CampaignRunFactory(campaign=campaign, total=len(contacts))
        deliveries = [DeliveryFactory(run=run, contact=contact) for contact in contacts]
        delivery_send_batch(delivery_ids=[d.id for d in deliveries])
        assert [Delivery.objects.get(pk=d.pk).status for d in deliveries] == ["sent"] * len(deliveries)
        assert sorted(rcpt for m in sink.messages for rcpt in m.rcpt_tos) == sorted(d.email for d in deliveries)
        return {m.rcpt_tos[0]: parse(m) for m in sink.messages}

    return send


def sending_campaign(workspace, **fields) -> Campaign:
    return CampaignFactory(workspace=workspace, status=Campaign.Status.SENDING, tracking={}, **fields)


def test_a_template_subject_that_renders_a_line_break_is_sent_on_one_line(workspace, delivered):
    # No raw line break, so the door accepts it; the Jinja string literal renders CR LF at send time.
    template = template_create(
        workspace=workspace,
        name="Sale",
        subject='Sale {{ "\\r\\nBcc: victim@example.org\\r\\nX-Injected: yes" }}',
        html="<p>Sale</p>",
    )
    clean_template = template_create(workspace=workspace, name="Clean", subject="Sale", html="<p>Sale</p>")
    injected = sending_campaign(workspace, template=template, subject="", html="", text="")
    clean = sending_campaign(workspace, template=clean_template, subject="", html="", text="")
    ann, eve = ContactFactory(workspace=workspace), ContactFactory(workspace=workspace)

    [clean_message] = delivered(clean, [ann]).values()
    [message] = delivered(injected, [eve]).values()

    assert header_names(message) == header_names(clean_message)
    assert message["Subject"] == "Sale Bcc: victim@example.org X-Injected: yes"


def test_substitution_data_with_a_line_break_is_sent_on_one_line(workspace, delivered):
    campaign = sending_campaign(
        workspace,
        subject="Sale: {{ promo }}",
        substitution_data={"promo": "50% off\r\nBcc: victim@example.org\nX-Injected: yes"},
    )
    clean = sending_campaign(workspace, subject="Sale: 50% off")
    ann, eve = ContactFactory(workspace=workspace), ContactFactory(workspace=workspace)

    [clean_message] = delivered(clean, [ann]).values()
    [message] = delivered(campaign, [eve]).values()

    assert header_names(message) == header_names(clean_message)
    assert message["Subject"] == "Sale: 50% off Bcc: victim@example.org X-Injected: yes"


def test_a_contact_attribute_with_a_line_break_is_sent_on_one_line(workspace, delivered):
    campaign = sending_campaign(workspace, subject="News for {{ city }}")
    ann = ContactFactory(workspace=workspace, attributes={"city": "Paris"})
    eve = ContactFactory(workspace=workspace, attributes={"city": "Paris\r\nBcc: victim@example.org\rX-Injected: 1"})

    messages = delivered(campaign, [ann, eve])

    assert header_names(messages[eve.email]) == header_names(messages[ann.email])
    assert messages[ann.email]["Subject"] == "News for Paris"
    assert messages[eve.email]["Subject"] == "News for Paris Bcc: victim@example.org X-Injected: 1"


def test_a_clean_campaign_message_has_the_headers_we_expect(workspace, delivered):
    # The reference the tests above compare with: no header beyond these.
    campaign = sending_campaign(workspace, subject="Hi", reply_to="help@mail.example.com")
    [message] = delivered(campaign, [ContactFactory(workspace=workspace)]).values()
    assert header_names(message) == Counter(
        [
            "from",
            "reply-to",
            "mime-version",
            "list-unsubscribe-post",
            "list-id",
            "feedback-id",
            "to",
            "subject",
            "date",
            "message-id",
            "list-unsubscribe",
            "content-type",
        ]
    )


# --- rows stored before this rule: the send path fails them one by one ----------------------------------------------


def test_a_stored_contact_name_with_a_line_break_fails_its_delivery_and_not_the_batch(workspace, sink):
    campaign = sending_campaign(workspace, subject="Hi")
    ann = ContactFactory(workspace=workspace, first_name="Ann")
    eve = ContactFactory(workspace=workspace, first_name="Eve\r\nX-Injected: yes")  # as stored before the fix
    run = CampaignRunFactory(campaign=campaign, total=2)
    deliveries = [DeliveryFactory(run=run, contact=contact) for contact in (ann, eve)]

    delivery_send_batch(delivery_ids=[d.id for d in deliveries])

    assert [Delivery.objects.get(pk=d.pk).status for d in deliveries] == ["sent", "failed"]
    assert Delivery.objects.get(pk=deliveries[1].pk).error
    assert [m.rcpt_tos for m in sink.messages] == [[ann.email]]


def test_a_stored_from_name_with_a_line_break_fails_the_campaigns_deliveries(workspace, sink):
    campaign = sending_campaign(workspace, from_name="Shop\r\nReply-To: attacker@evil.example")
    run = CampaignRunFactory(campaign=campaign, total=1)
    delivery = DeliveryFactory(run=run, contact=ContactFactory(workspace=workspace))

    delivery_send_batch(delivery_ids=[delivery.id])

    delivery.refresh_from_db()
    assert (delivery.status, bool(delivery.error)) == ("failed", True)
    assert sink.messages == []


# --- what Django's EmailMessage (the locmem/ESP path, transactional mail) does on its own -------------------


def test_django_refuses_a_line_break_in_an_ascii_display_name():
    to = formataddr(("Eve\r\nX-Injected: yes", "eve@example.org"))
    with pytest.raises(BadHeaderError):
        EmailMultiAlternatives("Hi", "Body", FROM_EMAIL, [to]).message()


def test_django_encodes_a_line_break_in_a_non_ascii_display_name_instead_of_refusing_it():
    # Why the rule cannot be left to Django: the name goes out RFC 2047-encoded with its CR LF inside, and
    # whatever decodes it gets a two-line display name back.
    to = formataddr(("Évé\r\nX-Injected: yes", "eve@example.org"), charset="utf-8")
    message = EmailMultiAlternatives("Hi", "Body", FROM_EMAIL, [to]).message()
    assert "x-injected" not in header_names(message)
    assert "\r\nX-Injected: yes" in str(make_header(decode_header(message["To"])))
