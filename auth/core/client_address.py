"""The address of the client behind a request, as trusted proxies (the gateway) report it.

``REMOTE_ADDR`` is the peer. Only when that peer is a trusted proxy (``TRUSTED_PROXIES``) is
``X-Forwarded-For`` believed, and then read from the right: each proxy appends the address it
saw, so the right-most entry that is not a trusted proxy is the real client. Anything a client
put on the left itself (a spoofed value) is never reached.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip().strip('"')
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def resolve(remote_addr: str, forwarded_for: str | None, trusted: Iterable[str]) -> str:
    networks = _networks(tuple(trusted))

    def is_trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(addr in n for n in networks)

    peer = _parse(remote_addr or "")
    if peer is None:
        return remote_addr or "unknown"
    if not is_trusted(peer) or not forwarded_for:
        return str(peer)
    for entry in reversed(forwarded_for.split(",")):
        addr = _parse(entry)
        if addr is None:
            # Garbage where a proxy should have written an address: stop at the last trusted hop.
            return str(peer)
        if not is_trusted(addr):
            return str(addr)
        peer = addr
    return str(peer)


def client_address(request: HttpRequest) -> str:
    return resolve(
        request.META.get("REMOTE_ADDR", ""),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        settings.TRUSTED_PROXIES,
    )
