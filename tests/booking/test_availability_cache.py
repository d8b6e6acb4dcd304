"""The per-replica memory of events' availability (pure unit tests, fake clock)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from apps.booking.adapters.availability import Availability, AvailabilityCache

SOLD_OUT = Availability("scheduled", 0, Decimal("10.00"), "EUR")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_lives_for_the_ttl():
    clock, event = Clock(), uuid.uuid4()
    cache = AvailabilityCache(0.5, clock=clock)
    assert cache.get(event) is None
    cache.put(event, SOLD_OUT)
    clock.now = 0.49
    assert cache.get(event) == SOLD_OUT
    clock.now = 0.5
    assert cache.get(event) is None  # lapsed: this caller reads


def test_one_caller_refreshes_a_lapsed_answer_while_the_others_keep_the_last_one():
    clock, event = Clock(), uuid.uuid4()
    cache = AvailabilityCache(0.5, clock=clock)
    cache.put(event, SOLD_OUT)
    clock.now = 0.6
    assert cache.get(event) is None  # the refresher
    assert [cache.get(event) for _ in range(5)] == [SOLD_OUT] * 5  # the rush meanwhile
    fresh = Availability("scheduled", 3, Decimal("10.00"), "EUR")
    cache.put(event, fresh)
    assert cache.get(event) == fresh
    # a refresher that never came back: after another ttl somebody else reads
    clock.now = 1.2
    assert cache.get(event) is None
    clock.now = 1.4
    assert cache.get(event) == fresh
    clock.now = 1.7
    assert cache.get(event) is None


def test_forget_and_a_zero_ttl_read_every_time():
    clock, event = Clock(), uuid.uuid4()
    cache = AvailabilityCache(0.5, clock=clock)
    cache.put(event, SOLD_OUT)
    cache.forget(event)
    assert cache.get(event) is None
    cache.put(event, SOLD_OUT)
    cache.forget()
    assert cache.get(event) is None
    off = AvailabilityCache(0, clock=clock)
    off.put(event, SOLD_OUT)
    assert off.get(event) is None


def test_the_number_of_events_remembered_is_bounded():
    cache = AvailabilityCache(10, max_events=3, clock=Clock())
    for _ in range(10):
        cache.put(uuid.uuid4(), SOLD_OUT)
    assert len(cache._seen) <= 3


def test_peek_never_claims_the_refresh():
    clock, event = Clock(), uuid.uuid4()
    cache = AvailabilityCache(0.5, clock=clock)
    cache.put(event, SOLD_OUT)
    assert cache.peek(event) == SOLD_OUT
    clock.now = 0.6
    assert cache.peek(event) is None  # lapsed, nobody refreshing
    assert cache.peek(event) is None  # still nobody: peeking claimed nothing
    assert cache.get(event) is None  # this caller refreshes
    assert cache.peek(event) == SOLD_OUT  # the others keep the last answer meanwhile
