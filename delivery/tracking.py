"""Signed tracking tokens and the HTML changes that carry them (docs/architecture.md#events).

Tokens are django.core.signing signatures (HMAC-SHA256 with SECRET_KEY), salted per purpose so that an
open token can never be replayed as an unsubscribe or click token. Open and unsubscribe tokens do not
expire: an unsubscribe link must keep working in a message read a year later. The separator is "." so
that a token is also a valid dot-atom local part (`unsubscribe+TOKEN@domain` in List-Unsubscribe's
mailto) and needs no escaping in a URL path.

A click token signs the destination URL itself together with the message it was in, so the click
endpoint redirects only to a URL that was in that message: no lookup, no stored link table, and a tampered
or invented URL fails the signature (the endpoint is not an open redirect). It also signs when it was made
(TimestampSigner: `payload.timestamp.signature`), so a link stops redirecting after
TRACKING_CLICK_LINK_MAX_AGE_DAYS instead of being a redirect signed forever (docs/decisions/024). Click
tokens made before that (`payload.signature`, no timestamp) are still read; their age is the send time of
the message they name.

A token names its message in one of two ways: a campaign delivery by its id (an int), a transactional
message by a `MessageRef` (its API id, workspace, batch and recipient). The second carries what its
events need, because the transactional table sits above this app (docs/architecture.md#layers) and the
endpoints must not read it; the signature makes those fields as trustworthy as a lookup.
"""

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing

OPEN, CLICK, UNSUBSCRIBE = "open", "click", "unsubscribe"
_SIGNERS = {
    purpose: signing.Signer(salt=f"mailsched.delivery.{purpose}", sep=".") for purpose in (OPEN, CLICK, UNSUBSCRIBE)
}
# Click tokens with their signing time. A salt of their own: a timestamped token's signature is also a
# valid untimestamped signature of "payload.timestamp" under the same salt, and must never be read so.
_CLICK_SIGNER = signing.TimestampSigner(salt="mailsched.delivery.click.timestamped", sep=".")


# Opens that no person made: Apple Mail Privacy Protection fetches every image of every message through its
# proxy as soon as it arrives, with the bare user agent "Mozilla/5.0"; link scanners of mail gateways fetch
# them too. Such opens are recorded (`data.machine`) but counted apart in reports, never in the open rate.
# Gmail's and Yahoo's image proxies fetch only when the message is displayed, so those opens are a person's.
_MACHINE_AGENTS = re.compile(
    r"^mozilla/5\.0$|^$|barracuda|mimecast|proofpoint|python-requests|curl/|wget/|headless|bot\b|spider|crawler",
    re.IGNORECASE,
)


def is_machine_open(user_agent: str) -> bool:
    """Whether an open pixel fetch with this User-Agent was made by software, not by a person reading."""
    return bool(_MACHINE_AGENTS.search((user_agent or "").strip()))


class BadToken(Exception):
    pass


def make_token(purpose: str, payload) -> str:
    return _SIGNERS[purpose].sign_object(payload)


def read_token(purpose: str, token: str):
    try:
        return _SIGNERS[purpose].unsign_object(token)
    except (signing.BadSignature, ValueError, UnicodeDecodeError) as exc:
        raise BadToken(str(exc)) from None


@dataclass(frozen=True)
class MessageRef:
    """A transactional message as its tracking links name it."""

    message_id: str
    workspace_id: str
    batch_id: str
    email: str

    def payload(self) -> list:
        return ["t", self.message_id, self.workspace_id, self.batch_id, self.email]


Target = int | MessageRef


def _payload(target: Target):
    return target.payload() if isinstance(target, MessageRef) else target


def _target(payload) -> Target:
    if isinstance(payload, int) and not isinstance(payload, bool):
        return payload
    is_ref = isinstance(payload, list) and len(payload) == 5 and payload[0] == "t"
    if is_ref and all(isinstance(part, str) for part in payload):
        return MessageRef(*payload[1:])
    raise BadToken("not a message token")


def read_target(purpose: str, token: str) -> Target:
    return _target(read_token(purpose, token))


@dataclass(frozen=True)
class Click:
    """A verified click token: the message, the destination, and when the link was signed (None for a
    token of the format before timestamps)."""

    target: Target
    url: str
    signed_at: datetime | None


def read_click(token: str) -> Click:
    """Verify a click token. Its age is not checked here: an expired link still names its URL, which the
    endpoint shows as text (delivery.services.tracking_click_follow decides)."""
    signed_at = None
    if token.count(".") == 2:
        try:
            payload = _CLICK_SIGNER.unsign_object(token)
            signed_at = datetime.fromtimestamp(signing.b62_decode(token.split(".")[1]), tz=UTC)
        except (signing.BadSignature, ValueError, UnicodeDecodeError, OverflowError) as exc:
            raise BadToken(str(exc)) from None
    elif token.count(".") == 1:
        payload = read_token(CLICK, token)
    else:
        raise BadToken("not a click token")
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[1], str)):
        raise BadToken("not a click token")
    if not _is_web_url(payload[1]):
        raise BadToken("not a web URL")
    return Click(target=_target(payload[0]), url=payload[1], signed_at=signed_at)


def _is_web_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def open_url(target: Target) -> str:
    return f"{settings.PUBLIC_BASE_URL}/t/o/{make_token(OPEN, _payload(target))}.gif"


def click_token(target: Target, url: str) -> str:
    return _CLICK_SIGNER.sign_object([_payload(target), url])


def click_url(target: Target, url: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/t/c/{click_token(target, url)}"


@dataclass(frozen=True)
class UnsubscribeLinks:
    url: str
    mailto: str

    @property
    def header(self) -> str:
        """List-Unsubscribe (RFC 2369) with the https link first: RFC 8058 one-click needs it."""
        return f"<{self.url}>, <mailto:{self.mailto}>"


def unsubscribe_links(target: Target, from_domain: str) -> UnsubscribeLinks:
    token = make_token(UNSUBSCRIBE, _payload(target))
    return UnsubscribeLinks(
        url=f"{settings.PUBLIC_BASE_URL}/t/u/{token}",
        mailto=f"unsubscribe+{token}@{from_domain}",
    )


# href="..." or href='...' of <a> and <area> tags with an http(s) URL. Anything else (mailto:, tel:,
# anchors, merge tags that rendered to nothing) is left alone.
_HREF = re.compile(
    r"""(<(?:a|area)\b[^>]*?\bhref\s*=\s*)(["'])\s*(https?://[^"'<>]*?)\s*\2""",
    re.IGNORECASE | re.DOTALL,
)


def rewrite_links(body: str, target: Target) -> str:
    """Point every http(s) link of an HTML body at the click endpoint. Links to our own tracking
    endpoints (the unsubscribe link a template may include) stay as they are."""
    own = f"{settings.PUBLIC_BASE_URL}/t/"

    def replace(match: re.Match) -> str:
        url = html.unescape(match.group(3))
        if url.startswith(own):
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{click_url(target, url)}{match.group(2)}"

    return _HREF.sub(replace, body)


_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)

# Hidden in every client we know of, but read by the inbox list as the first text of the message.
PREHEADER_HTML = (
    '<div style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;'
    'overflow:hidden;mso-hide:all;">{}</div>'
)
PIXEL_HTML = '<img src="{}" width="1" height="1" alt="" style="display:block;border:0;height:1px;width:1px;" />'


def add_preheader(body: str, preheader_html: str) -> str:
    """Insert the (already escaped) preheader as hidden text right after <body>, or at the very top."""
    block = PREHEADER_HTML.format(preheader_html)
    match = _BODY_OPEN.search(body)
    if match:
        return body[: match.end()] + block + body[match.end() :]
    return block + body


def add_open_pixel(body: str, target: Target) -> str:
    """Append the 1x1 open pixel at the end of the body (before </body> when there is one)."""
    pixel = PIXEL_HTML.format(open_url(target))
    matches = list(_BODY_CLOSE.finditer(body))
    if matches:
        at = matches[-1].start()
        return body[:at] + pixel + body[at:]
    return body + pixel
