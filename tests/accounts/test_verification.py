"""Each DNS check with stubbed answers: the record found, and each way it can be missing or wrong."""

import pytest
from django.test import override_settings

from accounts.services import sending_domain_verify
from tests.accounts.dns_stub import NO_ANSWER, TIMEOUT, published_zone, stub_zone
from tests.factories import SendingDomainFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_spf_mechanism")]


@pytest.fixture
def _spf_mechanism(settings):
    settings.SENDING_DOMAIN_SPF_MECHANISM = "include:_spf.relay.example"


@pytest.fixture
def domain(workspace):
    return SendingDomainFactory(workspace=workspace, domain="example.com")


def _verify(domain, monkeypatch, zone):
    stub_zone(monkeypatch, zone)
    checked = sending_domain_verify(workspace=domain.workspace, domain_id=domain.pk)
    return checked, checked.dns_checks


def _dkim(domain, checks):
    return checks[f"dkim:{domain.dkim_keys.get().selector}"]


def test_every_record_published_verifies_the_domain(domain, monkeypatch):
    checked, checks = _verify(domain, monkeypatch, published_zone(domain))
    assert checked.verified is True
    assert {name: c["status"] for name, c in checks.items()} == {
        "verification": "verified", f"dkim:{domain.dkim_keys.get().selector}": "verified",
        "spf": "verified", "dmarc": "verified",
    }


def test_missing_verification_record_fails_and_blocks(domain, monkeypatch):
    zone = published_zone(domain)
    zone["example.com"] = [r for r in zone["example.com"] if not r.startswith("mailsched-verification=")]
    checked, checks = _verify(domain, monkeypatch, zone)
    assert checks["verification"]["status"] == "failed"
    assert domain.verification_record in checks["verification"]["message"]
    assert checked.verified is False
    assert domain.verification_record in checked.last_check_error


def test_missing_dkim_record_fails_and_blocks(domain, monkeypatch):
    zone = published_zone(domain)
    name = f"{domain.dkim_keys.get().selector}._domainkey.example.com"
    del zone[name]
    checked, checks = _verify(domain, monkeypatch, zone)
    assert _dkim(domain, checks)["status"] == "failed"
    assert "does not exist" in _dkim(domain, checks)["message"] and name in _dkim(domain, checks)["message"]
    assert checked.verified is False


def test_dkim_record_with_another_key_fails_and_blocks(domain, monkeypatch):
    zone = published_zone(domain)
    name = f"{domain.dkim_keys.get().selector}._domainkey.example.com"
    zone[name] = ["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsomeoneelse"]
    checked, checks = _verify(domain, monkeypatch, zone)
    assert _dkim(domain, checks)["status"] == "failed"
    assert "not this domain's DKIM key" in _dkim(domain, checks)["message"]
    assert checked.verified is False


def test_dkim_lookup_timeout_fails_with_a_retry_hint(domain, monkeypatch):
    zone = published_zone(domain)
    zone[f"{domain.dkim_keys.get().selector}._domainkey.example.com"] = TIMEOUT
    _, checks = _verify(domain, monkeypatch, zone)
    assert _dkim(domain, checks)["status"] == "failed"
    assert "timed out" in _dkim(domain, checks)["message"]


def test_missing_spf_record_warns_without_blocking(domain, monkeypatch):
    zone = published_zone(domain)
    zone["example.com"] = [domain.verification_record]
    checked, checks = _verify(domain, monkeypatch, zone)
    assert checks["spf"]["status"] == "warning"
    assert "v=spf1 include:_spf.relay.example ~all" in checks["spf"]["message"]
    assert checked.verified is True


def test_spf_record_without_our_mechanism_warns(domain, monkeypatch):
    zone = published_zone(domain, spf="v=spf1 include:_spf.google.com -all")
    _, checks = _verify(domain, monkeypatch, zone)
    assert checks["spf"]["status"] == "warning"
    assert "does not contain 'include:_spf.relay.example'" in checks["spf"]["message"]


def test_two_spf_records_warn_of_the_permerror(domain, monkeypatch):
    zone = published_zone(domain)
    zone["example.com"].append("v=spf1 include:_spf.google.com -all")
    _, checks = _verify(domain, monkeypatch, zone)
    assert checks["spf"]["status"] == "warning"
    assert "2 SPF records" in checks["spf"]["message"] and "RFC 7208" in checks["spf"]["message"]


def test_spf_mechanism_with_a_plus_qualifier_counts(domain, monkeypatch):
    _, checks = _verify(domain, monkeypatch, published_zone(domain, spf="v=spf1 mx +include:_spf.relay.example ~all"))
    assert checks["spf"]["status"] == "verified"


def test_missing_dmarc_record_warns_without_blocking(domain, monkeypatch):
    checked, checks = _verify(domain, monkeypatch, published_zone(domain, dmarc=None))
    assert checks["dmarc"]["status"] == "warning"
    assert "_dmarc.example.com" in checks["dmarc"]["message"]
    assert checked.verified is True


def test_dmarc_record_explains_alignment_and_policy(domain, monkeypatch):
    _, checks = _verify(domain, monkeypatch, published_zone(domain, dmarc="v=DMARC1; p=reject; adkim=s"))
    message = checks["dmarc"]["message"]
    assert checks["dmarc"]["status"] == "verified"
    assert "p=reject" in message and "d=example.com" in message and "strict" in message


def test_dmarc_of_the_parent_domain_covers_a_subdomain(workspace, monkeypatch):
    domain = SendingDomainFactory(workspace=workspace, domain="news.example.com")
    zone = published_zone(domain, dmarc=None)
    zone["_dmarc.news.example.com"] = NO_ANSWER
    zone["_dmarc.example.com"] = ["v=DMARC1; p=quarantine"]
    _, checks = _verify(domain, monkeypatch, zone)
    assert checks["dmarc"]["status"] == "verified"
    assert "inherited from _dmarc.example.com" in checks["dmarc"]["message"]


def test_statuses_and_messages_show_in_dns_records(api, domain, monkeypatch):
    stub_zone(monkeypatch, published_zone(domain, dmarc=None))
    body = api.post(f"/api/v1/sending-domains/{domain.id}/verify").json()
    records = {r["purpose"]: r for r in body["dns_records"]}
    assert records["dkim"]["status"] == "verified"
    assert records["dmarc"]["status"] == "warning" and records["dmarc"]["message"]


@override_settings(SENDING_DOMAIN_SPF_MECHANISM="")
def test_spf_mechanism_defaults_to_the_mail_servers_host(domain, monkeypatch, settings):
    settings.EMAIL_HOST = "smtp.relay.example"
    _, checks = _verify(domain, monkeypatch, published_zone(domain, spf="v=spf1 a:smtp.relay.example -all"))
    assert checks["spf"]["status"] == "verified"
