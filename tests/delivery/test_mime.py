"""delivery.mime: the bytes of a campaign message, and its refusal of any header value that is not one line."""

import email.policy
from email.parser import BytesParser

import pytest

from delivery.mime import Envelope, HeaderInjection, MessageBlueprint, address, encode_header_value

# Each would end its header line early (or, for VT/FF, once the `email` package re-serializes it).
BREAKS = ["\r\n", "\n", "\r", "\x00", "\x0b", "\x0c"]
DATE = "Tue, 01 Dec 2026 09:00:00 +0000"


def blueprint(**overrides) -> MessageBlueprint:
    fields = {
        "from_email": "news@mail.example.com",
        "from_name": "News",
        "reply_to": "help@example.com",
        "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    }
    return MessageBlueprint(**{**fields, **overrides})


def envelope(**overrides) -> Envelope:
    fields = {
        "to_email": "ana@example.org",
        "to_name": "Ana Lima",
        "subject": "Hi Ana",
        "text": "Hi Ana\nline two",
        "html": "<p>Hi Ana</p>",
        "message_id": "<delivery-1.abc@mail.example.com>",
        "extra_headers": (("List-Unsubscribe", "<https://x.example/t/u/abc>"),),
    }
    return Envelope(**{**fields, **overrides})


def parse(raw: bytes):
    return BytesParser(policy=email.policy.default).parsebytes(raw)


def test_a_clean_message_has_exactly_its_headers():
    message = parse(blueprint().build(envelope(), date=DATE))
    assert list(message.keys()) == [
        "From",
        "Reply-To",
        "MIME-Version",
        "List-Unsubscribe-Post",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "Content-Type",
    ]
    assert (message["From"], message["To"], message["Subject"]) == (
        "News <news@mail.example.com>",
        "Ana Lima <ana@example.org>",
        "Hi Ana",
    )


def test_line_breaks_in_the_bodies_are_content_not_headers():
    message = parse(blueprint().build(envelope(text="a\r\nBcc: x@evil.example\r\n", html=""), date=DATE))
    assert "Bcc" not in message
    assert "Bcc: x@evil.example" in message.get_content()


def test_a_tab_is_allowed_in_a_header_value():
    message = parse(blueprint(from_name="News\tDesk").build(envelope(subject="Hi\tAna"), date=DATE))
    assert message["Subject"] == "Hi\tAna"


def test_a_non_ascii_value_is_encoded_and_decodes_back():
    message = parse(blueprint(from_name="Café Ünïcode").build(envelope(subject="Olá Ana"), date=DATE))
    assert (message["From"].addresses[0].display_name, message["Subject"]) == ("Café Ünïcode", "Olá Ana")


@pytest.mark.parametrize("char", BREAKS)
@pytest.mark.parametrize(("field", "header"), [("from_name", "From"), ("from_email", "From"), ("reply_to", "Reply-To")])
def test_blueprint_refuses_a_line_break_in_its_addresses(field, header, char):
    with pytest.raises(HeaderInjection) as caught:
        blueprint(**{field: f"x{char}Bcc: victim@example.org"})
    assert caught.value.header == header


@pytest.mark.parametrize("char", BREAKS)
def test_blueprint_refuses_a_line_break_in_a_fixed_header_value(char):
    with pytest.raises(HeaderInjection, match="X-Campaign"):
        blueprint(headers={"X-Campaign": f"spring{char}Bcc: victim@example.org"})


@pytest.mark.parametrize("name", ["X-Campaign\r\nBcc", "X Campaign", "X-Campaign:", ""])
def test_blueprint_refuses_an_invalid_fixed_header_name(name):
    with pytest.raises(HeaderInjection):
        blueprint(headers={name: "spring"})


@pytest.mark.parametrize("char", BREAKS)
@pytest.mark.parametrize(
    ("field", "header"),
    [("to_name", "To"), ("to_email", "To"), ("subject", "Subject"), ("message_id", "Message-ID")],
)
def test_envelope_refuses_a_line_break_in_its_headers(field, header, char):
    with pytest.raises(HeaderInjection) as caught:
        envelope(**{field: f"x{char}X-Injected: yes"})
    assert caught.value.header == header


@pytest.mark.parametrize("char", BREAKS)
def test_envelope_refuses_a_line_break_in_an_extra_header_value(char):
    with pytest.raises(HeaderInjection, match="List-Unsubscribe"):
        envelope(extra_headers=(("List-Unsubscribe", f"<https://x.example/u>{char}Bcc: victim@example.org"),))


def test_envelope_refuses_an_invalid_extra_header_name():
    with pytest.raises(HeaderInjection):
        envelope(extra_headers=(("X-A\r\nBcc", "1"),))


def test_a_line_break_is_refused_before_rfc2047_encoding_could_hide_it():
    # formataddr would turn this into one encoded-word whose decoded display name holds CR LF.
    with pytest.raises(HeaderInjection):
        envelope(to_name="Évé\r\nX-Injected: yes")


def test_address_refuses_a_line_break_in_the_display_name():
    with pytest.raises(HeaderInjection, match="The To header may not contain CR"):
        address("Eve\r\nX-Injected: yes", "eve@example.org", "To")


def test_encode_header_value_refuses_a_line_break():
    with pytest.raises(HeaderInjection, match="The Subject header may not contain LF"):
        encode_header_value("Hi\nBcc: victim@example.org")


def test_build_refuses_a_line_break_in_the_date():
    with pytest.raises(HeaderInjection, match="Date"):
        blueprint().build(envelope(), date=f"{DATE}\r\nBcc: victim@example.org")


def test_header_injection_is_a_value_error_naming_the_character():
    with pytest.raises(ValueError, match=r"control character U\+000B"):
        envelope(subject="Hi\x0bthere")
