"""Tracking endpoints under /t/ (docs/architecture.md#events): plain Django views, no API key. The signed token in the
path is the only credential; a token that fails its signature is a plain 404 and changes nothing.

HEAD is answered like GET (RFC 9110 §9.3.2: the same status and headers, no content) and records nothing:
link scanners of mail security gateways send HEAD to the links of a message, and those requests are
neither opens nor clicks.

`unsubscribe` is csrf_exempt on purpose: RFC 8058 one-click unsubscribes are POSTed by mailbox providers
(Gmail, Yahoo) from their servers, with no cookie and no CSRF token to send. The signed token protects the
action instead, and the action only ever takes mail away from the token's own recipient.
"""

import base64

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from delivery import services, tracking

# The smallest transparent GIF (1x1, 43 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


@require_safe
def open_pixel(request, token: str):
    try:
        target = tracking.read_target(tracking.OPEN, token)
    except tracking.BadToken:
        raise Http404("Unknown tracking token.") from None
    if request.method == "GET":
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
    live = services.tracking_click_follow(click=link, user_agent=_user_agent(request), record=request.method == "GET")
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
    if not services.tracking_unsubscribe(target=target, user_agent=_user_agent(request)):
        raise Http404("Unknown unsubscribe link.")
    return _page(request, "delivery/unsubscribed.html", {})


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    response["Cache-Control"] = "no-store, private"
    response["X-Robots-Tag"] = "noindex"
    return response
