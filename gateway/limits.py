"""Per-client rate limiting: an in-process token bucket per key.

The key is ``user:<id>`` for an authenticated caller, else ``addr:<peer address>`` (the TCP
peer, never a client-supplied ``X-Forwarded-For``). Buckets live in this process: with N gateway
workers a client may get up to N times the configured rate. That bounds abuse per worker without
any shared store; a limit that must be exact across workers needs a shared counter (Redis).
"""

from __future__ import annotations

import math
import time


class RateLimiter:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per request."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill time]

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """Spend a token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # Drop buckets that have refilled completely (they behave exactly like new ones).
        full_after = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < full_after}
        if len(self._buckets) >= self.max_keys:  # a flood of distinct keys: start over
            self._buckets.clear()


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
