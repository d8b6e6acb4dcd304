"""Offline scanners' uploads, on PostgreSQL and on SQLite (the embedded mode): a scan is never
dated before its ticket was issued (a scanner whose clock runs behind), and a correction of a
ticket's earliest scan lists the ticket again for the scanners that sync the check-in list.

Runs the check-in use cases (``handlers.upload_scans``, ``handlers.checkin_changes``) on
tickets issued straight into each database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from apps.booking import handlers
from apps.booking.adapters import tickets as ticketing
from apps.booking.domain import Booking, Line
from kit.db import Database
from kit.outbox import OUTBOX
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.booking.conftest import event_created, on_both_databases

pytestmark = pytest.mark.integration

db = on_both_databases("offline_scans")


async def issue(db: Database, repository: type, *, issued_at: datetime) -> tuple[Any, Principal]:
    """An event booking knows (so its organizer may scan) and a booking of 2 seats whose
    tickets were issued at ``issued_at``: the tickets and the organizer."""
    event = event_created(capacity=10)
    async with UnitOfWork(db) as uow:
        await handlers.apply_event_snapshot(event, uow, repository=repository)
        b = Booking.hold(
            id=uuid.uuid4(),
            event_id=event.event_id,
            user_id=uuid.uuid4(),
            lines=(Line(uuid.uuid4(), "GA", 2, Decimal("10.00")),),
            currency="EUR",
            now=issued_at,
            hold_for=timedelta(minutes=10),
        )
        key = await ticketing.event_key(uow.conn, event.event_id, issued_at)
        issued = ticketing.tickets_of(b, key, issued_at)
        await ticketing.insert(uow.conn, issued)
        await uow.commit()
    return issued, Principal(event.organizer_id, "organizer", {})


async def upload(db: Database, ticket: Any, at: datetime, scanner: Principal) -> tuple[str, Any]:
    [(result, stored)] = await handlers.upload_scans(
        db, event_id=ticket.event_id, scans=[(ticket.secret, at)], actor=scanner
    )
    return result, stored


async def announced(db: Database) -> dict[str, str]:
    """ticket id -> the ``redeemed_at`` its ``ticket_checked_in`` told."""
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(OUTBOX.c.payload).where(OUTBOX.c.routing_key == "ticket_checked_in")
            )
        ).all()
    return {p["ticket_id"]: p["redeemed_at"] for (p,) in rows}


async def test_a_scan_dated_before_its_ticket_was_issued_counts_as_of_the_issue(
    db: tuple[Database, type],
) -> None:
    database, repository = db
    issued_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    (first, second), scanner = await issue(database, repository, issued_at=issued_at)

    # a scanner whose clock is an hour behind: redeemed, as of the issue, not before it
    result, stored = await upload(database, first, issued_at - timedelta(hours=1), scanner)
    assert result == "redeemed"
    assert stored.redeemed_at == issued_at
    told = (await announced(database))[str(first.id)]
    assert datetime.fromisoformat(told.replace("Z", "+00:00")) == issued_at

    # already redeemed (after the issue): a later upload dated before the issue keeps the issue
    scanned = issued_at + timedelta(minutes=10)
    assert (await upload(database, second, scanned, scanner))[0] == "redeemed"
    result, stored = await upload(database, second, issued_at - timedelta(days=1), scanner)
    assert result == "already-redeemed"
    assert stored.redeemed_at == issued_at


async def test_an_earlier_scan_uploaded_later_lists_the_ticket_as_changed_again(
    db: tuple[Database, type],
) -> None:
    database, repository = db
    issued_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    (ticket, _other), scanner = await issue(database, repository, issued_at=issued_at)
    scanned = issued_at + timedelta(minutes=20)
    assert (await upload(database, ticket, scanned, scanner))[0] == "redeemed"
    async with database.read() as conn:
        redeemed = await ticketing.get(conn, ticket.id)
    assert redeemed is not None and redeemed.redeemed_at == scanned

    # a scanner that synced after the redemption...
    synced_at = redeemed.changed_at
    # ... then another scanner uploads an earlier scan of the same ticket
    earlier = issued_at + timedelta(minutes=5)
    result, stored = await upload(database, ticket, earlier, scanner)
    assert result == "already-redeemed"
    assert stored.redeemed_at == earlier  # the first scan wins
    assert stored.changed_at > synced_at  # and the change is listed for scanners to sync

    # what the list shows after the first scanner's position: the corrected ticket
    async with database.read() as conn:
        changed = await ticketing.changed_since(
            conn, ticket.event_id, (synced_at, ticket.id), datetime.now(UTC) + timedelta(1), 10
        )
    assert [(t.id, t.redeemed_at) for t in changed] == [(ticket.id, earlier)]
