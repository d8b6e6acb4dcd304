"""Per-client rate limiting: an in-process token bucket per key.

The key is ``user:<id>`` for a caller with a valid access token, else the client's address
(:func:`client_key`: the TCP peer, never a client-supplied ``X-Forwarded-For``; an IPv6 peer by
its /64). Every answer the gateway gives spends a token, refusals included: a client spraying
bad tokens is limited by its address like any anonymous one.

Buckets live in this process: with N gateway workers a client may get up to N times the
configured rate. That bounds abuse per worker without any shared store; a limit that must be
exact across workers needs a shared counter (Redis).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict


def client_key(host: str | None) -> str:
    """The bucket key of an address. An IPv6 client is its /64: that is the smallest block an
    ISP or a cloud hands out, so one attacker may hold 2^64 addresses of it, but not 2^64
    buckets. An IPv4-mapped address is the IPv4 address it maps."""
    if not host:
        return "addr:unknown"
    if ":" not in host:  # IPv4 (the common case: no parsing)
        return f"addr:{host}"
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])  # drop a zone id (fe80::1%eth0)
    except ValueError:
        return f"addr:{host}"
    if address.ipv4_mapped is not None:
        return f"addr:{address.ipv4_mapped}"
    return f"addr:{ipaddress.IPv6Network((address, 64), strict=False)}"


class RateLimiter:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per request.

    At most ``max_keys`` buckets are kept; when full, the least recently used one goes. That
    bucket is the one idle longest (usually refilled, so forgetting it changes nothing), and a
    flood of new keys never frees the clients being throttled right now.
    """

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        # key -> [tokens, last refill time], least recently used first
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """Spend a token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        self._buckets.move_to_end(key)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
