"""Committed outbox rows on their way from a unit of work (``kit.uow``) to its process's relay
(``kit.outbox``): a queue of their own, so that the database (``kit.db``, which holds the
hand-off while a relay runs) needs neither of them."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


class Handoff:
    """Committed outbox rows on their way from a unit of work to its process's relay.

    Bounded: past ``limit`` rows waiting (the broker is slow or gone) further rows are not kept;
    they are in the table, and the relay's polling rounds publish them once they are old enough.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.rows: deque[dict[str, Any]] = deque()
        self.ready = asyncio.Event()
        self.dropped = 0

    def put(self, rows: Sequence[dict[str, Any]]) -> None:
        if len(self.rows) + len(rows) > self.limit:
            if not self.dropped:
                log.warning(
                    "outbox hand-off full (%d rows waiting): further rows are left to "
                    "the polling rounds",
                    len(self.rows),
                )
            self.dropped += len(rows)
            return
        self.rows.extend(rows)
        self.ready.set()

    def take(self, n: int) -> list[dict[str, Any]]:
        rows = self.rows
        batch = [rows.popleft() for _ in range(min(n, len(rows)))]
        if not rows:
            self.ready.clear()
        return batch

    def clear(self) -> None:
        self.rows.clear()
        self.ready.clear()
