"""The one message builder: what subject, html and text a message gets (docs/architecture.md, "Outbound
layer"). The campaign preview and the send path both call `resolve_content` and `render_parts`, so what an
operator previews is what goes out, byte for byte apart from the per-delivery tracking links.

Which source wins, per part: a message's own subject, html or text when it has one, else its template's.
So a campaign with its own text and a template with html sends the template's html with its own text,
and previews the same (Mailchimp and SendGrid both treat a plain-text part as overridable on its own).
"""

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from common.rendering import TemplateRenderError, render
from delivery import tracking


@dataclass(frozen=True)
class MessageContent:
    """A message's sources (templates, not yet personalised) and its sending identity."""

    subject: str
    html: str
    text: str
    from_email: str
    from_name: str = ""
    reply_to: str = ""
    preheader: str = ""
    track_opens: bool = False
    track_clicks: bool = False
    substitution_data: dict[str, Any] = field(default_factory=dict)
    # Who sends it: the sender domain's DKIM key and the bulk headers (List-Id, Feedback-ID) are keyed by these.
    workspace_id: Any = None
    campaign_id: Any = None


def resolve_content(
    *,
    subject: str,
    html: str,
    text: str,
    template_subject: str = "",
    template_html: str = "",
    template_text: str = "",
) -> tuple[str, str, str]:
    """(subject, html, text): each part is the message's own, or else its template's."""
    return (subject or template_subject, html or template_html, text or template_text)


def has_body(*, html: str, text: str) -> bool:
    """A message has a body when its html or its text is more than white space: the one content rule of
    templates, campaign readiness and transactional requests (docs/decisions/014)."""
    return bool((html or "").strip() or (text or "").strip())


@dataclass(frozen=True)
class RenderedParts:
    subject: str
    html: str
    text: str


def render_parts(content: MessageContent, context: dict[str, Any]) -> RenderedParts:
    """Personalise the three parts for one recipient: the subject on one line (a line break or control
    character rendered into it cannot start a header, RFC 5322 §2.2), the preheader as hidden text at the
    top of the html. Raises common.rendering.TemplateRenderError (or its TemplateBudgetExceeded) naming
    the part, in its message ("html: ...") and as the field of its details."""
    subject = _render_part("subject", content.subject, context, html=False)
    if not subject.isprintable():
        # Any control character a contact's data or substitution data brings in becomes a space.
        subject = " ".join("".join(" " if unicodedata.category(c)[0] == "C" else c for c in subject).split())
    text = _render_part("text", content.text, context, html=False)
    body = _render_part("html", content.html, context, html=True)
    if body and content.preheader:
        body = tracking.add_preheader(body, _render_part("preheader", content.preheader, context, html=True))
    return RenderedParts(subject=subject, html=body, text=text)


def _render_part(field: str, source: str, context: dict[str, Any], *, html: bool) -> str:
    try:
        return render(source, context, html=html)
    except TemplateRenderError as exc:
        # Same class (the send path tells a spent budget from other errors), now naming the part.
        raise type(exc)(f"{field}: {exc.message}", details={field: [exc.message]}) from None


def add_tracking(body: str, *, opens: bool, clicks: bool, target: tracking.Target) -> str:
    """Click rewriting and the open pixel, when the message asks for them (html only). `target` is the
    campaign delivery's id or the transactional message's MessageRef."""
    if not body:
        return body
    if clicks:
        body = tracking.rewrite_links(body, target)
    if opens:
        body = tracking.add_open_pixel(body, target)
    return body
