import base64

import pytest
from cryptography.hazmat.primitives import serialization
from django.test import override_settings

from accounts import dkim_keys
from accounts.models import DkimKey
from accounts.selectors import dkim_signer_for, dkim_signers_clear, sending_domain_dns_records
from accounts.services import sending_domain_create, sending_domain_rotate_key, sending_domain_verify
from common import errors
from tests.accounts.dns_stub import published_zone, stub_zone
from tests.factories import SendingDomainFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_signers():
    dkim_signers_clear()
    yield
    dkim_signers_clear()


def test_adding_a_domain_generates_an_rsa_2048_signing_key(workspace):
    domain = sending_domain_create(workspace=workspace, domain="example.com")
    key = domain.dkim_keys.get()
    assert key.status == DkimKey.Status.ACTIVE
    public = serialization.load_der_public_key(base64.b64decode(key.public_key))
    assert public.key_size == 2048


def test_the_private_key_is_stored_encrypted(workspace):
    key = sending_domain_create(workspace=workspace, domain="example.com").dkim_keys.get()
    assert b"PRIVATE KEY" not in key.private_key_encrypted.encode()
    assert dkim_keys.decrypt_private_key(key.private_key_encrypted).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_key_stored_under_another_secret_cannot_be_decrypted(workspace):
    key = sending_domain_create(workspace=workspace, domain="example.com").dkim_keys.get()
    with override_settings(DKIM_KEY_ENCRYPTION_SECRET="another secret"), pytest.raises(dkim_keys.KeyDecryptionError):
        dkim_keys.decrypt_private_key(key.private_key_encrypted)


def test_dns_records_list_verification_dkim_spf_and_dmarc(workspace):
    domain = sending_domain_create(workspace=workspace, domain="example.com")
    key = domain.dkim_keys.get()
    records = {r["purpose"]: r for r in sending_domain_dns_records(domain=domain)}
    assert list(records) == ["verification", "dkim", "spf", "dmarc"]
    assert records["dkim"]["name"] == f"{key.selector}._domainkey.example.com"
    assert records["dkim"]["value"] == f"v=DKIM1; k=rsa; p={key.public_key}"
    assert records["dkim"]["type"] == "TXT"
    assert all(r["status"] == "pending" for r in records.values())


@override_settings(SENDING_DOMAIN_SPF_MECHANISM="include:_spf.relay.example")
def test_the_spf_record_names_the_configured_mechanism(workspace):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    spf = next(r for r in sending_domain_dns_records(domain=domain) if r["purpose"] == "spf")
    assert spf["value"] == "v=spf1 include:_spf.relay.example ~all"


def test_rotation_adds_a_pending_key_under_a_new_selector(workspace):
    domain = sending_domain_create(workspace=workspace, domain="example.com")
    old = domain.dkim_keys.get()
    sending_domain_rotate_key(workspace=workspace, domain_id=domain.pk)
    new = domain.dkim_keys.get(status=DkimKey.Status.PENDING)
    assert new.selector != old.selector
    assert new.public_key != old.public_key
    dkim = [r for r in sending_domain_dns_records(domain=domain) if r["purpose"] == "dkim"]
    assert [(r["selector"], r["key_status"]) for r in dkim] == [(old.selector, "active"), (new.selector, "pending")]


def test_rotating_twice_keeps_the_one_pending_key(workspace):
    domain = sending_domain_create(workspace=workspace, domain="example.com")
    sending_domain_rotate_key(workspace=workspace, domain_id=domain.pk)
    sending_domain_rotate_key(workspace=workspace, domain_id=domain.pk)
    assert domain.dkim_keys.filter(status=DkimKey.Status.PENDING).count() == 1


def test_the_old_key_signs_until_the_new_one_is_found_published(workspace, monkeypatch):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    old = domain.dkim_keys.get()
    sending_domain_rotate_key(workspace=workspace, domain_id=domain.pk)
    new = domain.dkim_keys.get(status=DkimKey.Status.PENDING)
    zone = published_zone(domain)
    del zone[f"{new.selector}._domainkey.example.com"]
    stub_zone(monkeypatch, zone)
    sending_domain_verify(workspace=workspace, domain_id=domain.pk)
    assert dkim_signer_for(workspace_id=workspace.pk, from_email="a@example.com").selector == old.selector

    stub_zone(monkeypatch, published_zone(domain))
    sending_domain_verify(workspace=workspace, domain_id=domain.pk)
    dkim_signers_clear()
    assert dkim_signer_for(workspace_id=workspace.pk, from_email="a@example.com").selector == new.selector
    old.refresh_from_db()
    assert old.status == DkimKey.Status.RETIRED and old.retired_at is not None
    listed = [r["selector"] for r in sending_domain_dns_records(domain=domain) if r["purpose"] == "dkim"]
    assert listed == [new.selector]


def test_rotating_another_workspace_domain_is_not_found(workspace, other_workspace):
    domain = SendingDomainFactory(workspace=other_workspace)
    with pytest.raises(errors.NotFound):
        sending_domain_rotate_key(workspace=workspace, domain_id=domain.pk)
    assert domain.dkim_keys.count() == 1


def test_no_signer_for_a_domain_of_another_workspace(workspace, other_workspace):
    SendingDomainFactory(workspace=other_workspace, domain="example.com")
    assert dkim_signer_for(workspace_id=workspace.pk, from_email="a@example.com") is None


@override_settings(DKIM_SIGN_MESSAGES=False)
def test_no_signer_when_the_relay_signs(workspace):
    SendingDomainFactory(workspace=workspace, domain="example.com")
    assert dkim_signer_for(workspace_id=workspace.pk, from_email="a@example.com") is None


def test_published_key_matches_with_whitespace_inside_p():
    material = dkim_keys.generate_key()
    split = material.public_key[:100] + " " + material.public_key[100:]
    assert dkim_keys.published_key_matches(f"v=DKIM1; k=rsa; p={split}", material.public_key)
    assert not dkim_keys.published_key_matches("v=DKIM1; k=rsa; p=", material.public_key)


def test_the_dkimpy_path_parses_a_signing_key_once_for_any_number_of_signatures(workspace):
    SendingDomainFactory(workspace=workspace, domain="example.com")
    signer = dkim_signer_for(workspace_id=workspace.pk, from_email="a@example.com")
    before = dkim_keys._parse_pem_private_key.cache_info().misses
    dkim_keys.use_openssl_rsa(False)  # the bench's comparison: dkimpy signs
    try:
        for n in range(3):
            signer.sign(b"From: a@example.com\r\nSubject: %d\r\n\r\nHello\r\n" % n)
    finally:
        dkim_keys.use_openssl_rsa(True)
    assert dkim_keys._parse_pem_private_key.cache_info().misses - before == 1
