"""Tracking endpoints under /t/ (docs/architecture.md#events): plain Django views, no API key. The signed token in the
path is the only credential; a token that fails its signature is a plain 404 and changes nothing.

HEAD is answered like GET (RFC 9110 §9.3.2: the same status and headers, no content) and records nothing:
link scanners of mail security gateways send HEAD to the links of a message, and those requests are
neither opens nor clicks.

`unsubscribe` is csrf_exempt on purpose: RFC 8058 one-click unsubscribes are POSTed by mailbox providers
(Gmail, Yahoo) from their servers, with no cookie and no CSRF token to send. The signed token protects the
action instead, and the action only ever takes mail away from the token's own recipient.

Each endpoint counts hits per client address (common.ratelimit, TRACKING_RATE_LIMIT; docs/decisions/020),
because each recorded hit inserts an event row. Over the limit nothing is recorded, but the reader still gets
what they came for: the pixel is still a GIF (a broken image helps nobody) and a click still redirects (never
strand a reader). Only an unsubscribe POST, which changes state, is refused with 429 and Retry-After.
"""

import base64
import math

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from common.ratelimit import Decision, client_key, parse_rate, rate_limit_hit
from delivery import services, tracking

# The smallest transparent GIF (1x1, 43 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


def _hit(request, endpoint: str) -> Decision:
    # A bucket per endpoint: a flood of pixel fetches from a mail proxy must not use up its readers' clicks.
    return rate_limit_hit(
        scope=f"tracking:{endpoint}", ident=client_key(request), rate=parse_rate(settings.TRACKING_RATE_LIMIT)
    )


@require_safe
def open_pixel(request, token: str):
    try:
        target = tracking.read_target(tracking.OPEN, token)
    except tracking.BadToken:
        raise Http404("Unknown tracking token.") from None
    if request.method == "GET" and _hit(request, "open").allowed:
        services.tracking_record_open(target=target, user_agent=_user_agent(request))
    response = HttpResponse(PIXEL_GIF, content_type="image/gif")
    # Every fetch must reach us to be counted; proxies and clients must not serve it from cache.
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private"
    return response


@require_safe
def click(request, token: str):
    try:
        link = tracking.read_click(token)
    except tracking.BadToken:
        raise Http404("Unknown tracking token.") from None
    # A deleted delivery still redirects while the link is young: the URL was signed by us, the reader
    # should not hit a dead end. An expired link is no redirect at all, but it shows where it led (410:
    # the redirect is gone for good).
    # A click over the limit still redirects, unrecorded.
    record = request.method == "GET" and _hit(request, "click").allowed
    live = services.tracking_click_follow(click=link, user_agent=_user_agent(request), record=record)
    if not live:
        return _page(request, "delivery/link_expired.html", {"url": link.url}, status=410)
    response = HttpResponseRedirect(link.url)
    response["Cache-Control"] = "no-store, private"
    return response


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    """GET (and HEAD) shows a confirm button and changes nothing (link scanners and prefetchers follow every
    link of a message). POST unsubscribes: the page's form, or the RFC 8058 one-click body
    `List-Unsubscribe=One-Click` sent by the mailbox provider."""
    try:
        target = tracking.read_target(tracking.UNSUBSCRIBE, token)
    except tracking.BadToken:
        raise Http404("Unknown unsubscribe link.") from None
    if request.method in ("GET", "HEAD"):
        return _page(request, "delivery/unsubscribe.html", {"action": request.path})
    decision = _hit(request, "unsubscribe")
    if not decision.allowed:
        # RFC 6585 §4; Retry-After in whole seconds (RFC 9110 §10.2.3).
        response = _page(request, "delivery/rate_limited.html", {}, status=429)
        response["Retry-After"] = str(math.ceil(decision.retry_after))
        return response
    if not services.tracking_unsubscribe(target=target, user_agent=_user_agent(request)):
        raise Http404("Unknown unsubscribe link.")
    return _page(request, "delivery/unsubscribed.html", {})


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    response["Cache-Control"] = "no-store, private"
    response["X-Robots-Tag"] = "noindex"
    return response
