"""One POST to a webhook endpoint, sent to the address the SSRF guard has just checked (webhooks.ssrf)."""

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.utils import timezone

from webhooks import ssrf

USER_AGENT = "mailsched-webhooks/1"
KEEP_BODY = 1000


@dataclass
class Answer:
    status_code: int | None
    duration_ms: int
    body: str = ""
    error: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header


def _retry_after(value: str | None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def post(*, url: str, body: bytes, headers: dict[str, str]) -> Answer:
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        host, port, addresses = ssrf.target(url)
    except ssrf.UnsafeUrl as exc:
        return Answer(None, elapsed(), error=f"Refused: {exc}"[:300])
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = urllib3.Timeout(
        connect=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS, read=settings.WEBHOOK_TIMEOUT_SECONDS
    )
    # The checked address is the one connected to; the name still goes in Host and, for TLS, in SNI and the
    # certificate check, so an https receiver is verified as the host the integrator gave.
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            addresses[0], port, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED",
            timeout=timeout, retries=False, maxsize=1,
        )
    else:
        pool = urllib3.HTTPConnectionPool(addresses[0], port, timeout=timeout, retries=False, maxsize=1)
    request_headers = {
        "Host": parts.netloc.rsplit("@", 1)[-1],
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    try:
        with pool:
            response = pool.urlopen(
                "POST", path, body=body, headers=request_headers, redirect=False, preload_content=False
            )
            try:
                text = response.read(KEEP_BODY).decode("utf-8", errors="replace")
            finally:
                response.release_conn()
            retry_after = _retry_after(response.headers.get("Retry-After"))
            return Answer(response.status, elapsed(), body=text, retry_after=retry_after)
    except urllib3.exceptions.TimeoutError:
        return Answer(None, elapsed(), error="Timed out waiting for the receiver.")
    except urllib3.exceptions.HTTPError as exc:
        return Answer(None, elapsed(), error=f"No answer: {type(exc).__name__}: {exc}"[:300])
