"""DKIM signatures of delivered mail (real SMTP sink), checked by dkimpy's own verifier against the DKIM
record the domain's dns_records tell the operator to publish."""

import re

import dkim
import pytest

from accounts.selectors import dkim_signers_clear
from accounts.services import sending_domain_create
from delivery.services import delivery_send_batch
from tests.accounts.dns_stub import dkim_dnsfunc
from transactional.services import transactional_message_send, transactional_send

pytestmark = pytest.mark.django_db

REQUIRED = {b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post"}


@pytest.fixture(autouse=True)
def _fresh_signers():
    dkim_signers_clear()
    yield
    dkim_signers_clear()


@pytest.fixture
def domain(workspace):
    # Through the service, as an operator adds it: the key is the one generated then.
    domain = sending_domain_create(workspace=workspace, domain="mail.example.com")
    domain.verified = True
    domain.save(update_fields=["verified"])
    return domain


def signature_tags(raw: bytes) -> dict:
    msg = dkim.DKIM(raw)
    header = next(value for name, value in msg.headers if name.lower() == b"dkim-signature")
    return dkim.util.parse_tag_value(re.sub(rb"\s+", b"", header))


def alter_subject(raw: bytes) -> bytes:
    return re.sub(rb"\r\nSubject: [^\r]*", b"\r\nSubject: You won a prize", raw, count=1)


def test_campaign_message_verifies_against_the_published_record(domain, make_deliveries, sink):
    delivery_send_batch(delivery_ids=[d.id for d in make_deliveries(1)])
    raw = sink.messages[0].data
    assert dkim.verify(raw, dnsfunc=dkim_dnsfunc(domain))


def test_campaign_signature_is_rsa_sha256_relaxed_by_the_from_domain(domain, make_deliveries, sink):
    delivery_send_batch(delivery_ids=[d.id for d in make_deliveries(1)])
    tags = signature_tags(sink.messages[0].data)
    assert (tags[b"a"], tags[b"c"], tags[b"d"]) == (b"rsa-sha256", b"relaxed/relaxed", b"mail.example.com")
    assert tags[b"s"].decode() == domain.dkim_keys.get().selector


def test_campaign_signature_covers_the_one_click_and_bulk_headers(domain, make_deliveries, sink):
    delivery_send_batch(delivery_ids=[d.id for d in make_deliveries(1)])
    covered = set(signature_tags(sink.messages[0].data)[b"h"].lower().split(b":"))
    assert REQUIRED | {b"list-id", b"feedback-id"} <= covered


def test_altering_a_signed_header_of_a_campaign_message_breaks_verification(domain, make_deliveries, sink):
    delivery_send_batch(delivery_ids=[d.id for d in make_deliveries(1)])
    raw = sink.messages[0].data
    assert not dkim.verify(alter_subject(raw), dnsfunc=dkim_dnsfunc(domain))


def test_removing_the_one_click_header_breaks_verification(domain, make_deliveries, sink):
    delivery_send_batch(delivery_ids=[d.id for d in make_deliveries(1)])
    raw = sink.messages[0].data
    stripped = re.sub(rb"\r\nList-Unsubscribe-Post: [^\r]*", b"", raw, count=1)
    assert stripped != raw
    assert not dkim.verify(stripped, dnsfunc=dkim_dnsfunc(domain))


def test_campaign_from_a_domain_without_a_key_goes_unsigned(workspace, make_deliveries, sink, campaign):
    campaign.from_email = "news@elsewhere.example.net"
    campaign.save(update_fields=["from_email"])
    delivery_send_batch(delivery_ids=[d.id for d in make_deliveries(1)])
    assert b"DKIM-Signature:" not in sink.messages[0].data


def test_no_signature_when_the_relay_signs(domain, make_deliveries, sink, settings):
    settings.DKIM_SIGN_MESSAGES = False
    delivery_send_batch(delivery_ids=[d.id for d in make_deliveries(1)])
    assert b"DKIM-Signature:" not in sink.messages[0].data


def test_campaign_mail_carries_list_id_and_feedback_id(domain, make_deliveries, sink, campaign, workspace):
    delivery_send_batch(delivery_ids=[d.id for d in make_deliveries(1)])
    message = sink.messages[0].message
    assert message["List-Id"] == f"<{campaign.pk.hex}.mail.example.com>"
    assert message["Feedback-ID"] == f"{campaign.pk.hex}:{workspace.pk.hex}:mailsched"


def _send_transactional(workspace, **overrides) -> None:
    data = {
        "workspace": workspace,
        "priority": "high",
        "sender": {"email": "alerts@mail.example.com", "name": "Alerts"},
        "to": [{"email": "ana@example.org", "name": "Ana"}],
        "subject": "Reset your password",
        "text": "Use this link.",
        "html": "<p>Use this link.</p>",
    }
    data.update(overrides)
    message_id = transactional_send(**data).message_ids[0]
    assert transactional_message_send(message_id=message_id) == "sent"


def test_transactional_message_verifies_against_the_published_record(workspace, domain, sink):
    _send_transactional(workspace)
    raw = sink.messages[0].data
    assert dkim.verify(raw, dnsfunc=dkim_dnsfunc(domain))
    assert signature_tags(raw)[b"d"] == b"mail.example.com"


def test_transactional_message_with_an_attachment_and_cc_verifies(workspace, domain, sink):
    from tests.transactional.conftest import attachment

    _send_transactional(workspace, cc=[{"email": "bo@example.org"}], attachments=[{**attachment(), "size": 16}])
    assert sorted(sink.messages[0].rcpt_tos) == ["ana@example.org", "bo@example.org"]
    assert dkim.verify(sink.messages[0].data, dnsfunc=dkim_dnsfunc(domain))


def test_altering_a_signed_header_of_a_transactional_message_breaks_verification(workspace, domain, sink):
    _send_transactional(workspace)
    assert not dkim.verify(alter_subject(sink.messages[0].data), dnsfunc=dkim_dnsfunc(domain))


def test_transactional_bcc_is_delivered_but_not_in_the_signed_message(workspace, domain, sink):
    _send_transactional(workspace, bcc=[{"email": "audit@example.org"}])
    raw = sink.messages[0].data
    assert "audit@example.org" in sink.messages[0].rcpt_tos
    assert b"audit@example.org" not in raw
    assert dkim.verify(raw, dnsfunc=dkim_dnsfunc(domain))
