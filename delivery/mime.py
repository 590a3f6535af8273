"""Fast MIME assembly for campaign sends.

Django's EmailMessage goes through the stdlib `email` package for every message (policy objects, header
folding, generator), which caps one process at about 750 personalised messages a second here. A campaign
run sends the same structure thousands of times, so the invariant parts (From, Reply-To, boundaries, the
part headers) are prepared once per run and each message only fills in what differs: recipient, subject,
bodies, ids and links. Encoding follows RFC 2045 (quoted-printable bodies, 7bit-safe) and RFC 2047
(encoded-words for non-ASCII headers), so the bytes are what the `email` package would produce in substance.
"""

import binascii
import re
import secrets
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formataddr, formatdate

# A header field is one line (RFC 5322 §2.2); folding is ours to do, never the data's (§3.2.2). CR and LF
# would end the line and start a header of the value's choosing, NUL is not allowed in a message at all,
# and the other ASCII controls (VT, FF, FS, GS, RS) are line breaks to str.splitlines(), so the `email`
# package turns them into real ones when it re-serializes a message (a relay, an archiver). TAB is
# whitespace and stays. Non-ASCII values are checked too, before RFC 2047 encoding hides what they hold.
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 5322 §2.2: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")
_CHAR_NAMES = {"\r": "CR", "\n": "LF", "\x00": "NUL"}


class HeaderInjection(ValueError):
    """A header value (or name) that would not stay one header line. `header` names the header."""

    def __init__(self, header: str, char: str = ""):
        self.header = header
        if char:
            what = _CHAR_NAMES.get(char, f"control character U+{ord(char):04X}")
            message = f"The {header} header may not contain {what} (a header field is a single line)."
        else:
            message = f"{header!r} is not a valid header field name (printable ASCII without a colon)."
        super().__init__(message)


def check_header(header: str, value: str) -> str:
    """Return `value`, or raise HeaderInjection naming `header` if it could break its header line."""
    # isprintable() is the fast path (C, no regex): true for nearly every real value, and false for any
    # value holding a control character, which the regex then finds (TAB and NBSP are false alarms).
    if not value.isprintable():
        match = _UNSAFE.search(value)
        if match is not None:
            raise HeaderInjection(header, match.group())
    return value


def _check_name(header: str) -> None:
    if not _FIELD_NAME.match(header):
        raise HeaderInjection(header)


def encode_header_value(value: str, header: str = "Subject") -> str:
    """ASCII stays as it is; anything else becomes RFC 2047 UTF-8 encoded-words, folded. Raises
    HeaderInjection for a value that is not a single line."""
    return _encode(check_header(header, value), header)


def address(name: str, email: str, header: str = "address") -> str:
    """`Name <email>` for the `header` it goes in; raises HeaderInjection when either part is not a single
    line (formataddr would keep a CR or LF inside the quoted name)."""
    return _address(check_header(header, name), check_header(header, email))


def _encode(value: str, header: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76, header_name=header).encode()


def _address(name: str, email: str) -> str:
    # formataddr quotes specials and RFC 2047-encodes non-ASCII display names.
    return formataddr((name, email), charset="utf-8") if name else email


def qp(text: str) -> bytes:
    """Quoted-printable of UTF-8 text with CRLF line ends (RFC 2045 §6.7; the C codec in binascii)."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class Envelope:
    """What differs per message. Making one with a header value that is not a single line (or an invalid
    extra header name) raises HeaderInjection."""

    to_email: str
    to_name: str
    subject: str
    text: str
    html: str
    message_id: str
    extra_headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Refused when the envelope is made, so nothing that holds it gets as far as a hand-off.
        check_header("To", self.to_email)
        check_header("To", self.to_name)
        check_header("Subject", self.subject)
        check_header("Message-ID", self.message_id)
        for name, value in self.extra_headers:
            _check_name(name)
            check_header(name, value)


@dataclass
class MessageBlueprint:
    """The invariant part of a campaign's messages, prepared once per run (or per batch). Making one with a
    From, Reply-To or fixed header that is not a single line raises HeaderInjection."""

    from_email: str
    from_name: str = ""
    reply_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    boundary: str = field(default_factory=lambda: "=_ms_" + secrets.token_hex(16))

    def __post_init__(self) -> None:
        lines = [f"From: {address(self.from_name, self.from_email, 'From')}"]
        if self.reply_to:
            lines.append(f"Reply-To: {check_header('Reply-To', self.reply_to)}")
        lines.append("MIME-Version: 1.0")
        for name, value in self.headers.items():
            _check_name(name)
            lines.append(f"{name}: {encode_header_value(value, name)}")
        check_header("Content-Type", self.boundary)
        self._fixed_headers = ("\r\n".join(lines) + "\r\n").encode("ascii")
        b = self.boundary.encode("ascii")
        self._alt_open = b'Content-Type: multipart/alternative; boundary="' + b + b'"\r\n\r\n'
        self._text_part = (
            b"--" + b + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._html_part = (
            b"\r\n--" + b + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._alt_close = b"\r\n--" + b + b"--\r\n"
        self._single_text = (
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._single_html = (
            b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        )

    def build(self, envelope: Envelope, *, date: str | None = None) -> bytes:
        # The envelope's values were checked when it was made (it is frozen): not again per message.
        head = [
            f"To: {_address(envelope.to_name, envelope.to_email)}",
            f"Subject: {_encode(envelope.subject, 'Subject')}",
            f"Date: {check_header('Date', date) if date else formatdate(usegmt=True)}",
            f"Message-ID: {envelope.message_id}",
        ]
        for name, value in envelope.extra_headers:
            head.append(f"{name}: {_encode(value, name)}")
        out = [self._fixed_headers, ("\r\n".join(head) + "\r\n").encode("utf-8")]
        if envelope.text and envelope.html:
            out += [
                self._alt_open,
                self._text_part,
                qp(envelope.text),
                self._html_part,
                qp(envelope.html),
                self._alt_close,
            ]
        elif envelope.html:
            out += [self._single_html, qp(envelope.html)]
        else:
            out += [self._single_text, qp(envelope.text)]
        return b"".join(out)
