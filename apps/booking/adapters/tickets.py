"""Tickets and their signing keys (migration 0006). Plain Core statements that PostgreSQL and
SQLite (the embedded mode) both run, so both repositories share them. Take the unit of work's
connection; never commit.

A ticket's ``secret`` is a compact JWS (EdDSA, Ed25519) signed with its event's key, claims
``tid`` (the ticket) and ``eid`` (the event), header ``kid``: a scanner that has the event's
public key (:func:`public_jwk`) verifies it offline. The private key is only ever read here, to
sign; it is never logged nor returned.

Redemption is one conditional UPDATE (``... WHERE status = 'valid' RETURNING``): of any number
of concurrent scans of one ticket exactly one changes the row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.booking.adapters.tables import metadata
from apps.booking.domain import Booking
from kit.dialects import insert_for
from kit.tables import UtcDateTime

TicketStatus = Literal["valid", "redeemed", "void"]

event_keys = sa.Table(
    "event_keys",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("kid", sa.String(64), nullable=False, unique=True),
    sa.Column("private_key", sa.LargeBinary, nullable=False, comment="raw Ed25519, 32 bytes"),
    sa.Column("public_key", sa.LargeBinary, nullable=False, comment="raw Ed25519, 32 bytes"),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("booking_id", sa.Uuid, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("ticket_type_id", sa.Uuid, nullable=False),
    sa.Column("seat_no", sa.Integer, nullable=False),
    sa.Column("attendee_name", sa.String(200), nullable=True),
    sa.Column("status", sa.String(20), nullable=False, comment="valid | redeemed | void"),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("redeemed_at", UtcDateTime, nullable=True),
    sa.Column("changed_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("booking_id", "seat_no", name="uq_tickets_booking_seat"),
    sa.Index("ix_tickets_event_changed", "event_id", "changed_at"),
)


@dataclass(frozen=True)
class Ticket:
    id: uuid.UUID
    booking_id: uuid.UUID
    event_id: uuid.UUID
    ticket_type_id: uuid.UUID
    seat_no: int
    attendee_name: str | None
    status: TicketStatus
    secret: str
    issued_at: datetime
    redeemed_at: datetime | None
    changed_at: datetime


def _ticket(row: sa.Row) -> Ticket:
    return Ticket(**{c.name: getattr(row, c.name) for c in tickets.columns})


# --- keys -------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class EventKey:
    event_id: uuid.UUID
    kid: str
    private_key: bytes
    public_key: bytes

    def signer(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.private_key)

    def verifier(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def __repr__(self) -> str:  # never the private key, whoever logs this
        return f"EventKey(event_id={self.event_id}, kid={self.kid!r})"


def public_jwk(key: EventKey) -> dict[str, str]:
    """The event's public key as a JWK (RFC 8037) for scanners that verify secrets offline."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64(key.public_key),
        "kid": key.kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def _new_key(event_id: uuid.UUID) -> EventKey:
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    raw_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    # the RFC 7638 thumbprint, shortened: secrets stay small enough for a compact QR code
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw_public)}, separators=(",", ":")
    )
    kid = _b64(hashlib.sha256(canonical.encode()).digest())[:16]
    return EventKey(event_id, kid, raw_private, raw_public)


def _key(row: sa.Row) -> EventKey:
    return EventKey(row.event_id, row.kid, bytes(row.private_key), bytes(row.public_key))


async def event_key(conn: AsyncConnection, event_id: uuid.UUID, now: datetime) -> EventKey:
    """The event's signing key, made on first use (racing callers agree on the stored one)."""
    read = sa.select(event_keys).where(event_keys.c.event_id == event_id)
    row = (await conn.execute(read)).first()
    if row is None:
        key = _new_key(event_id)
        await conn.execute(
            insert_for(conn, event_keys)
            .values(
                event_id=event_id,
                kid=key.kid,
                private_key=key.private_key,
                public_key=key.public_key,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
        row = (await conn.execute(read)).one()
    return _key(row)


async def key_by_kid(conn: AsyncConnection, kid: str) -> EventKey | None:
    row = (await conn.execute(sa.select(event_keys).where(event_keys.c.kid == kid))).first()
    return _key(row) if row is not None else None


# --- secrets ----------------------------------------------------------------------------------


def sign(key: EventKey, ticket_id: uuid.UUID) -> str:
    """The ticket's secret: a compact JWS of ``{tid, eid}`` (Ed25519 signatures are
    deterministic, so the same ticket always gets the same secret)."""
    return jwt.encode(
        {"tid": str(ticket_id), "eid": str(key.event_id)},
        key.signer(),
        algorithm="EdDSA",
        headers={"kid": key.kid, "typ": None},
    )


_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Claims:
    ticket_id: uuid.UUID
    event_id: uuid.UUID


async def verify(conn: AsyncConnection, secret: str) -> Claims | None:
    """The claims of a secret signed by one of our events' keys, for that same event; None for
    anything else (not a JWS, unknown key, bad signature, altered or foreign claims)."""
    try:
        kid = jwt.get_unverified_header(secret).get("kid")
        # ours are base64url: anything else (a NUL, a lone surrogate...) never reaches the query
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            return None
        if (key := await key_by_kid(conn, kid)) is None:
            return None
        claims = jwt.decode(
            secret, key.verifier(), algorithms=["EdDSA"], options={"require": ["tid", "eid"]}
        )
        found = Claims(uuid.UUID(str(claims["tid"])), uuid.UUID(str(claims["eid"])))
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return found if found.event_id == key.event_id else None


# --- issuing and voiding ----------------------------------------------------------------------


def ticket_id(booking_id: uuid.UUID, seat_no: int) -> uuid.UUID:
    """A ticket's id follows from its booking and seat: issuing twice names the same tickets."""
    return uuid.uuid5(booking_id, f"ticket/{seat_no}")


def tickets_of(booking: Booking, key: EventKey, now: datetime) -> list[Ticket]:
    """The tickets a confirmed booking gets: one per seat in line order, each with its
    attendee's name when the order named them."""
    seats = [ln.ticket_type_id for ln in booking.lines for _ in range(ln.quantity)]
    names = [a.name for a in booking.attendees] if booking.attendees else [None] * len(seats)
    out = []
    for n, (type_id, name) in enumerate(zip(seats, names, strict=True)):
        tid = ticket_id(booking.id, n)
        out.append(
            Ticket(
                id=tid,
                booking_id=booking.id,
                event_id=booking.event_id,
                ticket_type_id=type_id,
                seat_no=n,
                attendee_name=name,
                status="valid",
                secret=sign(key, tid),
                issued_at=now,
                redeemed_at=None,
                changed_at=now,
            )
        )
    return out


def _row(t: Ticket) -> dict[str, Any]:
    return {c.name: getattr(t, c.name) for c in tickets.columns}


async def insert(conn: AsyncConnection, issued: Sequence[Ticket]) -> None:
    """Store issued tickets; one already stored (a redelivered confirmation) is left as is."""
    if issued:
        await conn.execute(
            insert_for(conn, tickets).on_conflict_do_nothing(index_elements=["id"]),
            [_row(t) for t in issued],
        )


async def void_of_bookings(
    conn: AsyncConnection, booking_ids: Iterable[uuid.UUID], now: datetime
) -> int:
    """Every ticket of these (cancelled) bookings is void from now on."""
    ids = list(booking_ids)
    if not ids:
        return 0
    res = await conn.execute(
        tickets.update()
        .where(tickets.c.booking_id.in_(ids), tickets.c.status != "void")
        .values(status="void", changed_at=now)
    )
    return res.rowcount


# --- reading and redeeming --------------------------------------------------------------------


async def of_booking(conn: AsyncConnection, booking_id: uuid.UUID) -> list[Ticket]:
    stmt = sa.select(tickets).where(tickets.c.booking_id == booking_id).order_by(tickets.c.seat_no)
    return [_ticket(r) for r in await conn.execute(stmt)]


async def get(conn: AsyncConnection, ticket_id: uuid.UUID) -> Ticket | None:
    row = (await conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id))).first()
    return _ticket(row) if row is not None else None


async def any_redeemed(conn: AsyncConnection, booking_id: uuid.UUID) -> bool:
    """Whether a ticket of the booking was scanned in, its tickets locked meanwhile (a scan
    racing the caller's change waits for it, then finds the tickets void)."""
    rows = await conn.execute(
        sa.select(tickets.c.status).where(tickets.c.booking_id == booking_id).with_for_update()
    )
    return any(status == "redeemed" for (status,) in rows)


def _not_before_issue(at: datetime) -> sa.ColumnElement[datetime]:
    """``at``, or the ticket's issue if ``at`` is earlier: nobody scanned a ticket before it
    existed (an offline scanner whose clock runs behind says so)."""
    return sa.case(
        (tickets.c.issued_at > at, tickets.c.issued_at),
        else_=sa.literal(at, type_=tickets.c.issued_at.type),
    )


async def redeem(
    conn: AsyncConnection, ticket_id: uuid.UUID, at: datetime, now: datetime
) -> Ticket | None:
    """Redeem a valid ticket, scanned at ``at`` (its issue, if ``at`` is earlier): the ticket,
    or None if it was not valid (redeemed or void already). One statement: concurrent scans
    cannot both succeed."""
    row = (
        await conn.execute(
            tickets.update()
            .where(tickets.c.id == ticket_id, tickets.c.status == "valid")
            .values(status="redeemed", redeemed_at=_not_before_issue(at), changed_at=now)
            .returning(*tickets.columns)
        )
    ).first()
    return _ticket(row) if row is not None else None


async def keep_earliest(
    conn: AsyncConnection, ticket_id: uuid.UUID, at: datetime, now: datetime
) -> None:
    """A redeemed ticket scanned earlier than recorded (an offline scanner's upload): the
    earlier time is kept (never before the ticket's issue), and the ticket is changed as of
    ``now``, so scanners that sync the check-in list see the new time."""
    earliest = _not_before_issue(at)
    await conn.execute(
        tickets.update()
        .where(
            tickets.c.id == ticket_id,
            tickets.c.status == "redeemed",
            tickets.c.redeemed_at > earliest,
        )
        .values(redeemed_at=earliest, changed_at=now)
    )


async def counts(conn: AsyncConnection, event_id: uuid.UUID) -> tuple[int, int]:
    """``(tickets, redeemed)`` of the event; void tickets are not counted."""
    stmt = sa.select(
        sa.func.count().filter(tickets.c.status != "void"),
        sa.func.count().filter(tickets.c.status == "redeemed"),
    ).where(tickets.c.event_id == event_id)
    total, redeemed = (await conn.execute(stmt)).one()
    return int(total), int(redeemed)


async def changed_since(
    conn: AsyncConnection,
    event_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    until: datetime,
    limit: int,
) -> list[Ticket]:
    """The event's tickets changed after position ``after`` (``(changed_at, id)``; None: from
    the start) and before ``until``, oldest change first."""
    stmt = (
        sa.select(tickets)
        .where(tickets.c.event_id == event_id, tickets.c.changed_at < until)
        .order_by(tickets.c.changed_at, tickets.c.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(sa.tuple_(tickets.c.changed_at, tickets.c.id) > sa.tuple_(*after))
    return [_ticket(r) for r in await conn.execute(stmt)]
