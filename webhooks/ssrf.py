"""The SSRF guard: a webhook URL may not reach this machine or its private network (docs/decisions/041).

Checked when an endpoint is created or its URL changes, and again at every attempt, when the request is sent
to the very address that was checked (webhooks.http), so a name that re-resolves to 127.0.0.1 after the
check (DNS rebinding) is caught at the attempt. `WEBHOOK_ALLOW_PRIVATE_URLS` turns the guard off (dev, test).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeUrl(Exception):
    """The URL cannot be used: its message says why, for the API's 400 and the attempt log."""


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to. The one DNS seam of this module: tests replace it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"The host {host} could not be resolved ({exc}).") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def _refusal(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for kind, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return kind
    return None


def check(url: str) -> None:
    """The check at creation: the URL's form, and with the guard on, where it resolves to. With the guard off
    nothing is resolved (the name may only exist where the receiver runs)."""
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        _host_and_port(url)
    else:
        target(url)


def _host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("Give an http:// or https:// URL with a host.")
    if parts.username or parts.password:
        raise UnsafeUrl("A webhook URL may not carry a user name or password.")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("The URL's port is not a number from 1 to 65535.") from None
    return host, port


def target(url: str) -> tuple[str, int, list[str]]:
    """(host, port, addresses to connect to) for a webhook URL, or UnsafeUrl. With the guard on, every
    address the name resolves to must be public: one private answer among public ones is refused too."""
    host, port = _host_and_port(url)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = resolve(host, port)
    if not addresses:
        raise UnsafeUrl(f"The host {host} has no address.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        for address in addresses:
            kind = _refusal(address)
            if kind:
                raise UnsafeUrl(f"The URL points to a {kind} address ({address}); webhooks go to public hosts only.")
    return host, port, addresses
