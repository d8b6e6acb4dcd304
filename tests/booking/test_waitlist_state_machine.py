"""Property-based: the booking state machine (test_state_machine.py: holds, payments, failures,
expiries, cancellations, capacity changes, event cancellations, redeliveries) with people
joining, leaving and paying offers of the events' waiting lists in between. Besides everything
the booking machine checks (held + sold <= capacity, counters equal to the live bookings —
offered bookings included —, one announcement of each kind per booking), after every step:

* an entry is offered at most once, with a pending booking of its own (its user, its event, its
  seats): seats are never offered twice;
* a step offers no more seats than were free before it plus what it gave back (holds lapsed or
  cancelled, payments failed, paid bookings cancelled, capacity raised);
* the order of each list is kept: on an event whose types have no capacity of their own, no
  entry is offered while an earlier one waits, and the head waits only while the event has
  fewer free seats than it asks — an entry whose user holds too many seats to take its offer is
  passed over (it is not the head meanwhile);
* an offer never takes its user past the cap of held seats: every waiter's held seats are those
  of their pending offers, and at most the cap.

Runs the real use cases against the real PostgreSQL (its own database), like the booking machine.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, multiple, rule

from apps.booking import handlers, waitlist
from apps.booking.adapters.waitlist import WaitlistRepository
from kit.security import Principal
from contracts.messages import PaymentConfirmed, PaymentFailed
from tests.booking.conftest import payment_for
from tests.booking.test_state_machine import (
    PER_BOOKING,
    PER_USER,
    BookingMachine,
    run_on_booking_service,
)
from tests.conftest import DB_PREFIX

pytestmark = pytest.mark.integration

LIVE = ("pending", "confirmed")


class WaitlistMachine(BookingMachine):
    entries = Bundle("entries")

    def __init__(self) -> None:
        super().__init__()
        # people who wait are not the machine's holders: their held seats are their offers,
        # checked against the cap (PER_USER) by waiters_hold_their_offers_within_the_cap
        self.waiters = [uuid.uuid4() for _ in range(3)]
        self.entry_ids: list[uuid.UUID] = []
        self.offered: dict[uuid.UUID, uuid.UUID] = {}  # entry -> its booking, once offered
        self.before: dict[str, Any] | None = None

    @rule(
        target=entries,
        event=BookingMachine.events,
        quantity=st.integers(1, PER_BOOKING),
        who=st.integers(0, 2),
        typed=st.booleans(),
        hold_seconds=st.sampled_from([0, 600]),
        data=st.data(),
    )
    def join(
        self,
        event: uuid.UUID,
        quantity: int,
        who: int,
        typed: bool,
        hold_seconds: int,
        data: st.DataObject,
    ) -> Any:
        types = self.snapshots[event].ticket_types
        type_id = data.draw(st.sampled_from(types)).ticket_type_id if typed and types else None
        return self._join(event, who, quantity, ticket_type_id=type_id, hold_seconds=hold_seconds)

    def _join(
        self,
        event: uuid.UUID,
        who: int,
        quantity: int,
        *,
        ticket_type_id: uuid.UUID | None = None,
        hold_seconds: int = 600,
    ) -> Any:
        """Waiter ``who`` joins ``event``'s list: the entry, or None where the use case takes
        no one (seats available, event cancelled...)."""
        entry = self.run(
            self._in_uow(
                waitlist.join_waitlist,
                user=Principal(self.waiters[who], "customer", {}),
                event_id=event,
                ticket_type_id=ticket_type_id,
                quantity=quantity,
                hold_seconds=hold_seconds,
                max_per_booking=PER_BOOKING,
                max_held_per_user=PER_USER,
            )
        )
        if entry is not None:
            self.entry_ids.append(entry.id)
        return entry

    async def _in_uow(self, use_case: Any, **kw: Any) -> Any:
        if use_case in (waitlist.join_waitlist,):
            kw.pop("repository", None)
        return await super()._in_uow(_without_repository(use_case), **kw)

    @rule(target=BookingMachine.bookings, event=BookingMachine.events, data=st.data())
    def sell_out(self, event: uuid.UUID, data: st.DataObject) -> Any:
        """Others hold the seats left (up to 8 holds of 1..PER_BOOKING seats, each of one type,
        lapsing at once or not): people can then join the list, and small holds coming back
        put its order to the test."""
        made = []
        types = self.snapshots[event].ticket_types
        for _ in range(8):
            inv = self.run(
                self._fetch(
                    "SELECT capacity - held - sold AS free, status "
                    "FROM inventory WHERE event_id = :e",
                    e=event,
                )
            )[0]
            if inv.free <= 0 or inv.status != "scheduled":
                break
            q = data.draw(st.integers(1, min(inv.free, PER_BOOKING)))
            order: dict[str, Any] = {"quantity": q}
            if types:
                t = data.draw(st.sampled_from(types))
                if t.capacity is not None:
                    q = min(q, data.draw(st.integers(1, t.capacity)))
                order = {"lines": [(t.ticket_type_id, q)]}
            booking = self.run(
                self._in_uow(
                    handlers.reserve_seats,
                    user=Principal(uuid.uuid4(), "customer", {}),
                    event_id=event,
                    hold_seconds=data.draw(st.sampled_from([0, 600, 600])),
                    max_per_booking=PER_BOOKING,
                    max_held_per_user=PER_BOOKING,
                    **order,
                )
            )
            if booking is None:
                break
            self.booking_ids.append(booking.id)
            self.seen_status[booking.id] = "pending"
            made.append(booking)
        return multiple(*made)

    @rule(
        target=entries,
        event=BookingMachine.events,
        sizes=st.lists(st.integers(1, PER_BOOKING), min_size=2, max_size=3),
    )
    def queue_up(self, event: uuid.UUID, sizes: list[int]) -> Any:
        """Several people join one event's list at once, larger asks first: seats coming back
        a few at a time then test that those behind never jump the head."""
        joined = []
        for who, quantity in enumerate(sorted(sizes, reverse=True)):
            entry = self._join(event, who, quantity)
            if entry is not None:
                joined.append(entry)
        return multiple(*joined)

    @rule(entry=entries)
    def leave(self, entry: Any) -> None:
        if entry is None:
            return
        self.run(
            self._in_uow(
                handlers.leave_waitlist,
                user=Principal(entry.user_id, "customer", {}),
                entry_id=entry.id,
            )
        )

    @rule()
    def sweep_waitlists(self) -> None:
        """The sweeper's safety net (``serve_stuck_waitlists``), on this example's events only
        (offers made on earlier examples' events would change what this one's ``expire``
        finds): heads that fit in seats free as committed — left free while their users held
        too many seats, say — are served."""

        async def sweep(uow: Any, *, repository: Any) -> None:
            due = await WaitlistRepository(uow.conn).events_to_serve(10_000)
            await waitlist.serve_waitlist(uow, repository, [e for e in due if e in self.snapshots])

        self.run(self._in_uow(sweep))

    @rule(entry=entries, paid=st.booleans())
    def offer_answered(self, entry: Any, paid: bool) -> None:
        """The person waiting pays their offer (or the payment fails)."""
        if entry is None or entry.id not in self.offered:
            return
        booking = self.run(self._booking(self.offered[entry.id]))
        self.deliver(payment_for(booking, PaymentConfirmed if paid else PaymentFailed))

    async def _booking(self, booking_id: uuid.UUID) -> Any:
        from apps.booking.adapters.repository import BookingRepository

        async with self.service.db.read() as conn:
            return await BookingRepository(conn).get(booking_id)

    # --- invariants ----------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        ids = list(self.snapshots)
        events = {
            r.event_id: r
            for r in self.run(
                self._fetch(
                    "SELECT event_id, capacity, held, sold, status FROM inventory "
                    "WHERE event_id = ANY(CAST(:ids AS uuid[]))",
                    ids=ids,
                )
            )
        }
        entries = self.run(
            self._fetch(
                "SELECT w.id, w.seq, w.event_id, w.user_id, w.quantity, w.status, w.booking_id, "
                "b.event_id AS b_event, b.user_id AS b_user, b.quantity AS b_quantity "
                "FROM waitlist_entries w LEFT JOIN bookings b ON b.id = w.booking_id "
                "WHERE w.event_id = ANY(CAST(:ids AS uuid[])) ORDER BY w.seq",
                ids=ids,
            )
        )
        statuses = dict(
            self.run(
                self._fetch(
                    "SELECT id, status FROM bookings WHERE event_id = ANY(CAST(:ids AS uuid[]))",
                    ids=ids,
                )
            )
        )
        quantities = dict(
            self.run(
                self._fetch(
                    "SELECT id, quantity FROM bookings WHERE event_id = ANY(CAST(:ids AS uuid[]))",
                    ids=ids,
                )
            )
        )
        events_of = dict(
            self.run(
                self._fetch(
                    "SELECT id, event_id FROM bookings WHERE event_id = ANY(CAST(:ids AS uuid[]))",
                    ids=ids,
                )
            )
        )
        held = dict(
            self.run(
                self._fetch(
                    "SELECT user_id, held FROM user_holds WHERE user_id = ANY(CAST(:u AS uuid[]))",
                    u=self.waiters,
                )
            )
        )
        return {
            "events": events,
            "entries": entries,
            "statuses": statuses,
            "quantities": quantities,
            "events_of": events_of,
            "held": held,
        }

    @invariant()
    def waiters_hold_their_offers_within_the_cap(self) -> None:
        held = dict(
            self.run(
                self._fetch(
                    "SELECT user_id, held FROM user_holds WHERE user_id = ANY(CAST(:u AS uuid[]))",
                    u=self.waiters,
                )
            )
        )
        pending = dict(
            self.run(
                self._fetch(
                    "SELECT user_id, sum(quantity) FROM bookings WHERE status = 'pending' "
                    "AND user_id = ANY(CAST(:u AS uuid[])) GROUP BY user_id",
                    u=self.waiters,
                )
            )
        )
        for user in self.waiters:
            assert held.get(user, 0) == pending.get(user, 0) <= PER_USER, user

    @invariant()
    def waiting_lists_are_served_in_order_from_freed_seats_only(self) -> None:
        if not self.snapshots:
            return
        now = self._state()
        before = self.before or {"events": {}, "statuses": {}, "entries": [], "held": {}}
        was_offered = {e.id for e in before["entries"] if e.booking_id is not None}

        # an entry is offered once, with a booking of its own (user, event, seats)
        offered_bookings = [e.booking_id for e in now["entries"] if e.booking_id is not None]
        assert len(offered_bookings) == len(set(offered_bookings))
        for e in now["entries"]:
            if e.status == "offered":
                assert (e.b_event, e.b_user, e.b_quantity) == (e.event_id, e.user_id, e.quantity)
                if e.id in self.offered:
                    assert self.offered[e.id] == e.booking_id, "offered twice"
                self.offered[e.id] = e.booking_id
                if e.booking_id not in self.seen_status:  # the booking machine follows it too
                    self.booking_ids.append(e.booking_id)
                    self.seen_status[e.booking_id] = "pending"
            else:
                assert e.booking_id is None

        # a step offers no more than was free before it plus what it gave back
        for event_id, inv in now["events"].items():
            prev = before["events"].get(event_id)
            if prev is None:
                continue
            new_offers = sum(
                e.quantity
                for e in now["entries"]
                if e.event_id == event_id and e.booking_id is not None and e.id not in was_offered
            )
            given_back = sum(
                now["quantities"][b]
                for b, status in now["statuses"].items()
                if now["events_of"][b] == event_id
                and status not in LIVE
                and before["statuses"].get(b, "pending") in LIVE
            )
            free_before = prev.capacity - prev.held - prev.sold
            raised = max(inv.capacity - prev.capacity, 0)
            assert new_offers <= max(free_before, 0) + given_back + raised, (
                event_id,
                new_offers,
                free_before,
                given_back,
                raised,
            )

        # strict FIFO on events whose types have no capacity of their own
        def capped(e: Any, held: dict[uuid.UUID, int]) -> bool:
            """Its user holds too many seats to take its offer (passed over by the serve)."""
            return held.get(e.user_id, 0) + e.quantity > PER_USER

        for event_id, inv in now["events"].items():
            if any(t.capacity is not None for t in self.snapshots[event_id].ticket_types):
                continue
            # (an entry asking more than the whole event holds nobody up, nor does one whose
            # user holds too many seats: a serve only adds to its user's held seats, so one
            # passed over in this step is still over the cap now)
            mine = [e for e in now["entries"] if e.event_id == event_id]
            waiting = [
                e
                for e in mine
                if e.status == "waiting"
                and e.quantity <= inv.capacity
                and not capped(e, now["held"])
            ]
            offered = [e.seq for e in mine if e.booking_id is not None and e.id not in was_offered]
            if waiting and offered:
                assert max(offered) < min(e.seq for e in waiting), (event_id, offered, waiting)
            # the head waits for seats (one whose user held too many before this step may have
            # dropped below the cap without seats coming back here: sweep_waitlists serves it)
            if waiting and inv.status == "scheduled" and not capped(waiting[0], before["held"]):
                head = waiting[0]
                assert head.quantity > inv.capacity - inv.held - inv.sold, (event_id, head)
        self.before = now


def _without_repository(use_case: Any) -> Any:
    """The waiting-list use cases that take no repository, as the machine's ``_in_uow`` calls
    every use case with one."""
    if use_case is waitlist.join_waitlist:

        async def join(uow: Any, *, repository: Any, **kw: Any) -> Any:
            return await waitlist.join_waitlist(uow, **kw)

        return join
    return use_case


@pytest.mark.timeout(900)  # a few minutes on a busy 2-core machine, above the suite's default
def test_waiting_lists_are_served_in_order_never_twice_and_only_from_freed_seats() -> None:
    run_on_booking_service(WaitlistMachine, database_prefix=f"{DB_PREFIX}wsm_", max_examples=60)
