"""Property-based: any interleaving of online scans, offline uploads (scanned minutes ago, in
any order, some dated before the tickets were issued), bursts of simultaneous scans and
cancellations (voiding a booking's tickets) keeps

* each ticket redeemed at most once: one ``redeemed`` answer and one ``ticket_checked_in``
  message per ticket, whatever else was scanned;
* a void ticket never redeemed after it was voided (every later scan: ``ticket-void``);
* the stored ``redeemed_at`` the earliest accepted scan time of the ticket (first scan wins),
  never before the ticket's issue;
* the ticket's ``changed_at`` moved on whenever its stored ``redeemed_at`` changed (what
  offline scanners sync on);
* the stored status what the model says.

Runs the check-in use case (``handlers.scan_ticket``, what the online route and the upload both
call) and the voiding that cancellations run, on PostgreSQL and on SQLite (the embedded mode),
each in a database of its own made by the service's migrations.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from apps.booking import handlers
from apps.booking.adapters import tickets as ticketing
from apps.booking.domain import Booking, Line
from kit.db import Database
from kit.outbox import OUTBOX
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.support.db import postgres_database, sqlite_database

pytestmark = pytest.mark.integration

BOOKINGS, SEATS = 3, 2
SCANNER = Principal(uuid.uuid4(), "organizer", {})
ISSUED_AGO = timedelta(hours=1)  # uploads go back up to 2 hours: some before the issue


class CheckInMachine(RuleBasedStateMachine):
    db: Database
    loop: asyncio.AbstractEventLoop

    def __init__(self) -> None:
        super().__init__()
        self.event_id = uuid.uuid4()
        self.now = datetime.now(UTC)
        self.issued_at = self.now - ISSUED_AGO
        self.bookings: list[Booking] = []
        self.tickets: list[ticketing.Ticket] = []
        self.status: dict[uuid.UUID, str] = {}
        self.earliest_upload: dict[uuid.UUID, datetime] = {}  # of the accepted uploads
        self.redeemed_answers: dict[uuid.UUID, int] = {}
        # when a step last changed a ticket's stored redeemed_at (its changed_at is not older)
        self.moved_at: dict[uuid.UUID, datetime] = {}
        self.run(self._issue())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _issue(self) -> None:
        type_id = uuid.uuid4()
        async with UnitOfWork(self.db) as uow:
            key = await ticketing.event_key(uow.conn, self.event_id, self.issued_at)
            for _ in range(BOOKINGS):
                b = Booking.hold(
                    id=uuid.uuid4(),
                    event_id=self.event_id,
                    user_id=uuid.uuid4(),
                    lines=(Line(type_id, "GA", SEATS, Decimal("10.00")),),
                    currency="EUR",
                    now=self.issued_at,
                    hold_for=timedelta(minutes=10),
                )
                issued = ticketing.tickets_of(b, key, self.issued_at)
                await ticketing.insert(uow.conn, issued)
                self.bookings.append(b)
                self.tickets += issued
            await uow.commit()
        for t in self.tickets:
            self.status[t.id] = "valid"
            self.redeemed_answers[t.id] = 0

    async def _scan(self, ticket: ticketing.Ticket, at: datetime | None) -> tuple[str, Any]:
        async with UnitOfWork(self.db) as uow:
            result = await handlers.scan_ticket(
                uow, event_id=self.event_id, secret=ticket.secret, actor=SCANNER, scanned_at=at
            )
            await uow.commit()
        return result

    def _expect(
        self, ticket: ticketing.Ticket, result: str, at: datetime | None, started: datetime
    ) -> None:
        before = self.status[ticket.id]
        if before == "void":
            assert result == "ticket-void"
            return
        if before == "valid":
            assert result == "redeemed"
            self.status[ticket.id] = "redeemed"
            self.redeemed_answers[ticket.id] += 1
            self.moved_at[ticket.id] = started
        else:
            assert result == "already-redeemed"
        if at is not None:
            at = max(at, self.issued_at)  # nobody scanned a ticket before it was issued
            kept = self.earliest_upload.get(ticket.id)
            if kept is None or at < kept:
                self.earliest_upload[ticket.id] = at
                self.moved_at[ticket.id] = started

    @rule(n=st.integers(0, BOOKINGS * SEATS - 1))
    def scan_online(self, n: int) -> None:
        t = self.tickets[n]
        started = datetime.now(UTC)
        result, _ = self.run(self._scan(t, None))
        self._expect(t, result, None, started)

    @rule(n=st.integers(0, BOOKINGS * SEATS - 1), minutes_ago=st.integers(1, 120))
    def upload_offline_scan(self, n: int, minutes_ago: int) -> None:
        t = self.tickets[n]
        at = self.now - timedelta(minutes=minutes_ago)
        started = datetime.now(UTC)
        result, _ = self.run(self._scan(t, at))
        self._expect(t, result, at, started)

    @rule(n=st.integers(0, BOOKINGS * SEATS - 1), k=st.integers(2, 6))
    def simultaneous_scans(self, n: int, k: int) -> None:
        t = self.tickets[n]

        async def burst() -> list[tuple[str, Any]]:
            return await asyncio.gather(*(self._scan(t, None) for _ in range(k)))

        started = datetime.now(UTC)
        results = sorted(r for r, _ in self.run(burst()))
        before = self.status[t.id]
        if before == "void":
            assert results == ["ticket-void"] * k
        elif before == "redeemed":
            assert results == ["already-redeemed"] * k
        else:
            assert results == ["already-redeemed"] * (k - 1) + ["redeemed"]
            self.status[t.id] = "redeemed"
            self.redeemed_answers[t.id] += 1
            self.moved_at[t.id] = started

    @rule(n=st.integers(0, BOOKINGS - 1))
    def cancel_booking(self, n: int) -> None:
        b = self.bookings[n]

        async def void() -> None:
            async with UnitOfWork(self.db) as uow:
                await ticketing.void_of_bookings(uow.conn, [b.id], datetime.now(UTC))
                await uow.commit()

        self.run(void())
        for t in self.tickets:
            if t.booking_id == b.id:
                self.status[t.id] = "void"

    @invariant()
    def stored_tickets_agree_with_the_model(self) -> None:
        async def read() -> tuple[dict[uuid.UUID, Any], dict[str, int]]:
            async with self.db.read() as conn:
                rows = (
                    await conn.execute(
                        sa.select(ticketing.tickets).where(
                            ticketing.tickets.c.event_id == self.event_id
                        )
                    )
                ).all()
                announced = (
                    await conn.execute(
                        sa.select(OUTBOX.c.payload).where(
                            OUTBOX.c.routing_key == "ticket_checked_in"
                        )
                    )
                ).all()
            counts: dict[str, int] = {}
            for (payload,) in announced:
                counts[payload["ticket_id"]] = counts.get(payload["ticket_id"], 0) + 1
            return {r.id: r for r in rows}, counts

        stored, announced = self.run(read())
        for t in self.tickets:
            row = stored[t.id]
            assert row.status == self.status[t.id]
            assert self.redeemed_answers[t.id] <= 1
            assert announced.get(str(t.id), 0) == self.redeemed_answers[t.id]
            if self.redeemed_answers[t.id]:
                # uploads are of scans minutes ago, online scans happen now: the earliest
                # accepted upload's time (never before the issue) wins whatever the order
                # they came in, and the ticket shows as changed since
                if t.id in self.earliest_upload:
                    assert row.redeemed_at == self.earliest_upload[t.id]
                else:
                    assert row.redeemed_at >= self.now
                assert row.changed_at >= self.moved_at[t.id], (row.changed_at, t.id)
            else:
                assert row.redeemed_at is None


def _run(db_factory: Any) -> None:
    loop = asyncio.new_event_loop()
    manager = db_factory()
    db = loop.run_until_complete(manager.__aenter__())
    CheckInMachine.db, CheckInMachine.loop = db, loop
    try:
        run_state_machine_as_test(
            CheckInMachine,
            settings=settings(
                max_examples=25,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()


def test_checkins_redeem_each_ticket_at_most_once_on_postgresql() -> None:
    _run(lambda: postgres_database("booking", "checkins"))


def test_checkins_redeem_each_ticket_at_most_once_on_sqlite(tmp_path: Path) -> None:
    _run(lambda: sqlite_database("booking", tmp_path))
