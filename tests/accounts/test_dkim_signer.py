"""Our RFC 6376 signer (accounts.dkim_keys.Signer): every signature checked by dkimpy's verifier against the
record the domain publishes, over messages that exercise each canonicalization rule, and the same message
after the changes relaxed canonicalization is meant to survive."""

import re

import dkim
import pytest

from accounts import dkim_keys
from accounts.selectors import dkim_signer_for, dkim_signers_clear
from accounts.services import sending_domain_create
from tests.accounts.dns_stub import dkim_dnsfunc

pytestmark = pytest.mark.django_db

HEAD = b"From: News <news@mail.example.com>\r\nTo: a@example.org\r\nSubject: Hello\r\n"


@pytest.fixture
def domain(workspace):
    dkim_signers_clear()
    yield sending_domain_create(workspace=workspace, domain="mail.example.com")
    dkim_signers_clear()


@pytest.fixture
def sign(domain):
    signer = dkim_signer_for(workspace_id=domain.workspace_id, from_email="news@mail.example.com")
    return signer.sign


def verifies(raw: bytes, domain) -> bool:
    return dkim.verify(raw, dnsfunc=dkim_dnsfunc(domain))


@pytest.mark.parametrize(
    "message",
    [
        HEAD + b"\r\nHello\r\n",
        HEAD + b"\r\nruns  of\t\tspace \t and a trailing one \r\nnext line\r\n",
        HEAD + b"\r\nempty lines at the end\r\n\r\n\r\n",
        HEAD + b"\r\nwhitespace-only lines at the end\r\n \t \r\n  \r\n",
        HEAD + b"\r\nno CRLF at the end",
        HEAD + b"\r\n",  # an empty body
        HEAD + b"\r\n\r\n\r\n",  # a body of empty lines
        HEAD,  # no body at all
        b"From: news@mail.example.com\r\nSubject: folded\r\n  across\tlines  \r\nTo:   spaced@example.org \r\n"
        b"\r\nx\r\n",
        HEAD + b"Reply-To: one@example.org\r\nReply-To: two@example.org\r\n\r\ntwo instances\r\n",
        HEAD + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"caf=C3=A9 =\r\nsoft break\r\n",
    ],
    ids=[
        "plain", "whitespace-runs", "trailing-empty-lines", "trailing-blank-lines", "no-final-crlf",
        "empty-body", "only-empty-lines", "no-body", "folded-headers",
        "repeated-header", "quoted-printable",
    ],
)  # fmt: skip
def test_the_signature_verifies_with_dkimpy(message, sign, domain):
    assert verifies(sign(message), domain)


def test_a_relay_that_rewraps_headers_and_changes_whitespace_keeps_the_signature_valid(sign, domain):
    raw = sign(HEAD + b"\r\nsome  text \r\nmore\r\n\r\n")
    relayed = raw.replace(b"Subject: Hello", b"Subject:\r\n   Hello  ").replace(b"some  text", b"some \t text")
    assert relayed != raw
    assert verifies(relayed, domain)


def test_a_changed_body_breaks_the_signature(sign, domain):
    raw = sign(HEAD + b"\r\nPay 10 EUR\r\n")
    assert not verifies(raw.replace(b"10 EUR", b"99 EUR"), domain)


def test_a_header_added_later_under_a_signed_name_breaks_the_signature(sign, domain):
    raw = sign(HEAD + b"\r\nHello\r\n")
    # A second Subject above the signed one is what a signer lists once and a verifier checks from the
    # bottom up: an appended one is the instance it finds first (RFC 6376 §5.4.2).
    tampered = raw.replace(b"\r\n\r\nHello", b"\r\nSubject: Another\r\n\r\nHello")
    assert not verifies(tampered, domain)


def test_the_signature_lists_only_the_headers_present(sign):
    raw = sign(HEAD + b"\r\nHello\r\n")
    assert dkim_tags(raw)[b"h"] == b"from:to:subject"


def test_the_signature_header_is_folded_to_78_characters_a_line(sign, domain):
    every = b"".join(
        b"%s: x\r\n" % name.title() for name in dkim_keys.SIGNED_HEADERS if name not in (b"from", b"to", b"subject")
    )
    raw = sign(HEAD + every + b"\r\nHello\r\n")
    header = raw.split(b"\r\nFrom:")[0]
    assert len(dkim_tags(raw)[b"h"].split(b":")) == len(dkim_keys.SIGNED_HEADERS)
    assert max(len(line) for line in header.split(b"\r\n")) <= 78
    assert verifies(raw, domain)


def dkim_tags(raw: bytes) -> dict:
    header = raw.split(b"\r\nFrom:")[0]
    return dkim.util.parse_tag_value(re.sub(rb"\s+", b"", header.split(b":", 1)[1]))
