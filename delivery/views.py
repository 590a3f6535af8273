"""Tracking endpoints under /t/ (docs/architecture.md#events): plain Django views, no API key. The signed token in the
path is the only credential; a token that fails its signature is a plain 404 and changes nothing.

`unsubscribe` is csrf_exempt on purpose: RFC 8058 one-click unsubscribes are POSTed by mailbox providers
(Gmail, Yahoo) from their servers, with no cookie and no CSRF token to send. The signed token protects the
action instead, and the action only ever takes mail away from the token's own recipient.
"""

import base64

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from delivery import services, tracking

# The smallest transparent GIF (1x1, 43 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


@require_GET
def open_pixel(request, token: str):
    try:
        target = tracking.read_target(tracking.OPEN, token)
    except tracking.BadToken:
        raise Http404("Unknown tracking token.") from None
    services.tracking_record_open(target=target, user_agent=_user_agent(request))
    response = HttpResponse(PIXEL_GIF, content_type="image/gif")
    # Every fetch must reach us to be counted; proxies and clients must not serve it from cache.
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private"
    return response


@require_GET
def click(request, token: str):
    try:
        target, url = tracking.read_click(token)
    except tracking.BadToken:
        raise Http404("Unknown tracking token.") from None
    # A deleted delivery still redirects: the URL was signed by us, the reader should not hit a dead end.
    services.tracking_record_click(target=target, url=url, user_agent=_user_agent(request))
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store, private"
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    """GET shows a confirm button and changes nothing (link scanners and prefetchers follow every link
    of a message). POST unsubscribes: the page's form, or the RFC 8058 one-click body
    `List-Unsubscribe=One-Click` sent by the mailbox provider."""
    try:
        target = tracking.read_target(tracking.UNSUBSCRIBE, token)
    except tracking.BadToken:
        raise Http404("Unknown unsubscribe link.") from None
    if request.method == "GET":
        return _page(request, "delivery/unsubscribe.html", {"action": request.path})
    if not services.tracking_unsubscribe(target=target, user_agent=_user_agent(request)):
        raise Http404("Unknown unsubscribe link.")
    return _page(request, "delivery/unsubscribed.html", {})


def _page(request, template: str, context: dict) -> HttpResponse:
    response = render(request, template, context)
    response["Cache-Control"] = "no-store, private"
    response["X-Robots-Tag"] = "noindex"
    return response
