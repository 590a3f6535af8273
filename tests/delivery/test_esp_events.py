"""ESP events in: django-anymail's tracking webhooks for Amazon SES and Mailgun, posted with the ESPs'
documented sample payloads (tests/delivery/esp_samples) to the real URLs, through anymail's own views."""

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from audience.models import Contact, Suppression
from delivery.models import Event
from tests.factories import ContactFactory, EventFactory, TransactionalMessageFactory

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).with_name("esp_samples")
SECRET = "anymail:s3cret-for-tests"
SIGNING_KEY = "key-mailgun-test-signing"
MESSAGE_ID = "<20260101.abc123@mail.example.com>"
BARE_ID = MESSAGE_ID.strip("<>")  # how Mailgun reports it


@pytest.fixture(autouse=True)
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


@pytest.fixture
def client():
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(SECRET.encode()).decode())
    return c


@pytest.fixture
def sent(workspace):
    """A campaign message to recipient@example.com, sent with MESSAGE_ID, and its contact."""
    contact = ContactFactory(workspace=workspace, email="recipient@example.com")
    event = EventFactory(
        workspace=workspace, type=Event.Type.SENT, email=contact.email, message_id=MESSAGE_ID, delivery_id=4242,
        campaign_id=uuid.uuid4(), run_id=uuid.uuid4(),
    )
    return event


def sample(name: str, message_id: str = MESSAGE_ID) -> dict:
    return json.loads((SAMPLES / name).read_text().replace("MESSAGE_ID", message_id))


def sns(ses_event: dict, sns_id: str = "b0d4ae22-5a49-5f3e-b2c6-2a4a8a0d1b52") -> dict:
    """The SNS notification envelope Amazon SES publishes through (Amazon SNS Developer Guide)."""
    return {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_event),
        "Timestamp": "2017-08-05T00:41:02.669Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+..",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:x",
    }


def post_ses(client, body: dict):
    return client.post(
        "/anymail/amazon_ses/tracking/", json.dumps(body), content_type="text/plain; charset=UTF-8",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE=body["Type"], HTTP_X_AMZ_SNS_MESSAGE_ID=body["MessageId"],
    )


def mailgun_signed(body: dict, key: str = SIGNING_KEY) -> dict:
    sig = body["signature"]
    sig["signature"] = hmac.new(key.encode(), f"{sig['timestamp']}{sig['token']}".encode(), hashlib.sha256).hexdigest()
    return body


def post_mailgun(client, body: dict):
    return client.post("/anymail/mailgun/tracking/", json.dumps(body), content_type="application/json")


def test_an_ses_hard_bounce_is_a_bounced_event_and_suppresses_the_address(client, sent, workspace):
    response = post_ses(client, sns(sample("ses_bounce.json")))

    assert response.status_code == 200
    event = Event.objects.get(type=Event.Type.BOUNCED)
    assert (event.workspace_id, event.message_id, event.campaign_id) == (workspace.pk, MESSAGE_ID, sent.campaign_id)
    assert "550 5.1.1" in event.data["reason"] and event.data["esp"] == "amazon_ses"
    assert Suppression.objects.get(workspace=workspace, email="recipient@example.com").reason == "bounced"
    assert Contact.objects.get(email="recipient@example.com").status == Contact.Status.BOUNCED


def test_an_ses_soft_bounce_is_deferred_and_suppresses_nothing(client, sent):
    ses_event = sample("ses_bounce.json")
    ses_event["bounce"]["bounceType"] = "Transient"

    post_ses(client, sns(ses_event))

    assert Event.objects.filter(type=Event.Type.DEFERRED).count() == 1
    assert not Suppression.objects.exists()


def test_an_ses_complaint_suppresses_the_address(client, sent, workspace):
    post_ses(client, sns(sample("ses_complaint.json")))

    assert Event.objects.filter(type=Event.Type.COMPLAINED).count() == 1
    assert Suppression.objects.get(workspace=workspace).reason == "complained"


def test_the_same_ses_notification_twice_is_taken_in_once(client, sent):
    body = sns(sample("ses_bounce.json"))
    post_ses(client, body)
    post_ses(client, body)

    assert Event.objects.filter(type=Event.Type.BOUNCED).count() == 1


def test_ses_with_the_wrong_basic_auth_is_refused_and_records_nothing(sent):
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"anymail:guess").decode())

    response = post_ses(wrong, sns(sample("ses_bounce.json")))

    assert response.status_code == 400
    assert not Event.objects.filter(type=Event.Type.BOUNCED).exists()
    assert not Suppression.objects.exists()


def test_an_ses_delivery_moves_a_transactional_message_to_delivered(client, workspace):
    message = TransactionalMessageFactory(workspace=workspace, to_email="recipient@example.com")

    post_ses(client, sns(sample("ses_delivery.json", message.smtp_message_id)))

    message.refresh_from_db()
    assert message.status == "delivered"
    assert list(message.events.values_list("type", flat=True)) == ["delivered"]
    assert message.events.get().message_id == str(message.pk)


def test_a_mailgun_permanent_failure_with_a_valid_signature_bounces_and_suppresses(client, sent, workspace):
    response = post_mailgun(client, mailgun_signed(sample("mailgun_failed_permanent.json", BARE_ID)))

    assert response.status_code == 200
    event = Event.objects.get(type=Event.Type.BOUNCED)
    assert event.message_id == MESSAGE_ID and event.data["esp"] == "mailgun"
    assert Suppression.objects.get(workspace=workspace).reason == "bounced"


def test_a_mailgun_post_with_an_invalid_signature_is_refused(client, sent):
    body = sample("mailgun_failed_permanent.json", BARE_ID)  # Mailgun's own signature

    response = post_mailgun(client, body)

    assert response.status_code == 400
    assert not Event.objects.filter(type=Event.Type.BOUNCED).exists()
    assert not Suppression.objects.exists()


def test_a_mailgun_post_signed_with_another_key_is_refused(client, sent):
    body = mailgun_signed(sample("mailgun_delivered.json", BARE_ID), key="key-other")

    assert post_mailgun(client, body).status_code == 400


def test_the_same_mailgun_event_twice_is_taken_in_once(client, sent):
    body = mailgun_signed(sample("mailgun_delivered.json", BARE_ID))
    post_mailgun(client, body)
    post_mailgun(client, body)

    assert Event.objects.filter(type=Event.Type.DELIVERED).count() == 1


def test_a_mailgun_bounce_moves_a_transactional_message_to_bounced(client, workspace):
    message = TransactionalMessageFactory(workspace=workspace, to_email="recipient@example.com")

    post_mailgun(client, mailgun_signed(sample("mailgun_failed_permanent.json", message.smtp_message_id.strip("<>"))))

    message.refresh_from_db()
    assert message.status == "bounced"
    assert Suppression.objects.get(workspace=workspace).reason == "bounced"


def test_a_late_delivered_does_not_undo_a_bounce(client, workspace):
    message = TransactionalMessageFactory(workspace=workspace, to_email="recipient@example.com", status="bounced")

    post_mailgun(client, mailgun_signed(sample("mailgun_delivered.json", message.smtp_message_id.strip("<>"))))

    message.refresh_from_db()
    assert message.status == "bounced"


def test_an_event_about_a_message_we_never_sent_records_nothing(client, workspace):
    response = post_mailgun(client, mailgun_signed(sample("mailgun_failed_permanent.json", "unknown@elsewhere")))

    assert response.status_code == 200
    assert not Event.objects.exists() and not Suppression.objects.exists()
