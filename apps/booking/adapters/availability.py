"""What this process last saw of each event's availability, for a few hundred milliseconds.

On an on-sale rush nearly every attempt meets a sold-out event. Refusing those from memory
keeps them off the database (no pool wait, no read) and leaves it to the holds that can still
succeed. The cache only ever refuses: a sale is always decided by the database
(``booking_reserve``), which also answers with the availability it saw, so a refusal keeps the
cache current. The cost is bounded: seats that come back (an expired hold, a cancellation) may
be refused for about ``ttl`` seconds (at most twice that while one read refreshes it); an event that was cancelled is refused by the database
anyway. Per process; replicas each keep their own. What this process changes itself (a
snapshot from the events service, a cancelled or expired hold, a failed payment) is forgotten
at once after it commits, so only other replicas' changes wait for ``ttl``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Availability:
    """What was seen of an event: its quota (``available``) is what refusals from memory use;
    ``types`` (the ticket types as last read) only serve to build a booking, which the database
    re-checks, so a sold-out type never makes the whole event look sold out."""

    status: str
    available: int
    price: Decimal
    currency: str
    types: tuple[Any, ...] = ()


class AvailabilityCache:
    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_events: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_events = max_events
        self._clock = clock
        self._seen: dict[uuid.UUID, tuple[float, Availability]] = {}
        self._refreshing: dict[uuid.UUID, float] = {}

    def get(self, event_id: uuid.UUID) -> Availability | None:
        """What was seen of the event less than ``ttl`` seconds ago, if anything.

        When that has just lapsed, the first caller gets None (and reads); until its answer
        is put, or another ``ttl`` has passed, the others keep getting the last one, so a
        rush of attempts makes one read per ``ttl``, not one each (stale-while-revalidate)."""
        answer = self.peek(event_id)
        if answer is None and event_id in self._seen:  # lapsed, nobody refreshing: this caller
            self._refreshing[event_id] = self._clock()
        return answer

    def peek(self, event_id: uuid.UUID) -> Availability | None:
        """What :meth:`get` would answer, without becoming the one who refreshes it: the last
        answer while it is fresh, or while somebody else is reading it again."""
        if self.ttl <= 0:
            return None
        seen = self._seen.get(event_id)
        if seen is None:
            return None
        now = self._clock()
        started = self._refreshing.get(event_id)
        if now - seen[0] < self.ttl or (started is not None and now - started < self.ttl):
            return seen[1]
        return None

    def put(self, event_id: uuid.UUID, availability: Availability) -> None:
        if self.ttl <= 0:
            return
        if len(self._seen) >= self.max_events and event_id not in self._seen:
            self._seen.clear()  # a crude bound; entries only live for ttl anyway
            self._refreshing.clear()
        self._seen[event_id] = (self._clock(), availability)
        self._refreshing.pop(event_id, None)

    def forget(self, event_id: uuid.UUID | None = None) -> None:
        """Forget one event (or, with no id, every event): its next attempt reads again."""
        if event_id is None:
            self._seen.clear()
            self._refreshing.clear()
        else:
            self._seen.pop(event_id, None)
            self._refreshing.pop(event_id, None)
