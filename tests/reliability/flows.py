"""Bookings and payments driven through the gateway the way a careful client does it while the
platform is being hurt: every command carries an ``Idempotency-Key`` and is retried on a
transport error, a 5xx from the gateway (service down) or a 404 (not known there yet), and the
truth of what each order should end as is kept on the client side for the audit afterwards."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp

from tests.reliability.harness import Harness
from tests.reliability.jepsen import Counts
from tests.support.api_bodies import event_body

RETRY_STATUSES = {404, 502, 503, 504}  # a 500 is a bug: never retried away
DECLINED = "tok_chargeDeclined"


async def call_until_answered(
    api: Any, method: str, path: str, token: str, *, timeout: float = 60, **kw: Any
) -> tuple[int, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body, _ = await api.call(method, path, token, **kw)
            if status not in RETRY_STATUSES:
                return status, body
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, body = 0, repr(exc)
        if time.monotonic() > deadline:
            return status, body
        await asyncio.sleep(0.1)


@dataclass
class Order:
    """One customer's booking and its payment; ``card`` decides how it must end."""

    token: str
    user_id: str
    card: str = "tok_visa"
    quantity: int = 1
    booking_id: str | None = None
    payment: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def paid(self) -> bool:
        return self.card != DECLINED

    @property
    def final_status(self) -> str:
        return "confirmed" if self.paid else "cancelled"

    @property
    def notification_kind(self) -> str:
        return "booking_confirmed" if self.paid else "payment_failed"


@dataclass
class Sale:
    """One event and the orders placed on it."""

    api: Any
    harness: Harness
    organizer: str
    event_id: str
    price: Decimal
    started: datetime
    orders: list[Order] = field(default_factory=list)

    @classmethod
    async def open(cls, api: Any, harness: Harness, *, capacity: int = 1000) -> Sale:
        started = datetime.now(UTC)
        _, _, organizer = await api.user("organizer")
        # an odd price of its own, to find this sale's charges in the provider's whole ledger
        price = Decimal(random.randint(100, 99999)) / 100
        status, event, _ = await api.call(
            "POST",
            "/events/create",
            organizer,
            json=event_body(
                title=f"Fault run {uuid.uuid4().hex[:6]}", capacity=capacity, price=str(price)
            ),
        )
        assert status == 201, event
        return cls(api, harness, organizer, event["id"], price, started)

    async def customers(self, n: int) -> list[tuple[str, str]]:
        users = await asyncio.gather(*(self.api.user() for _ in range(n)))
        return [(user_id, token) for user_id, _, token in users]

    async def place(self, order: Order) -> None:
        """Book, then pay; each step retried with its own Idempotency-Key until answered."""
        self.orders.append(order)
        status, booking = await call_until_answered(
            self.api,
            "POST",
            "/booking/create",
            order.token,
            json={"event_id": self.event_id, "quantity": order.quantity},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if status != 201:
            order.errors.append(f"booking: {status} {booking}")
            return
        order.booking_id = booking["id"]
        status, payment = await call_until_answered(
            self.api,
            "POST",
            "/payments/process",
            order.token,
            json={
                "booking_id": order.booking_id,
                "payment_method": {"type": "card", "token": order.card},
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if status not in (200, 201):
            order.errors.append(f"payment: {status} {payment}")
            return
        order.payment = payment

    # --- the audit ------------------------------------------------------------------------------

    @property
    def booked(self) -> list[Order]:
        return [o for o in self.orders if o.booking_id]

    async def booking_statuses(self) -> dict[str, str]:
        rows = await self.harness.sql(
            "booking",
            "SELECT id::text, status FROM bookings WHERE id = ANY($1::uuid[])",
            [o.booking_id for o in self.booked],
        )
        return {r["id"]: r["status"] for r in rows}

    async def charges(self) -> dict[str, int]:
        """Charges in the provider's own ledger per booking (its payment id decides the key)."""
        rows = await self.harness.sql(
            "payments",
            """
            SELECT d.booking_id::text AS booking_id, count(c.idempotency_key) AS n
            FROM booking_dues d JOIN simulator_charges c
              ON c.idempotency_key = d.payment_id::text || ':charge' AND c.operation = 'charge'
            WHERE d.booking_id = ANY($1::uuid[]) GROUP BY d.booking_id
        """,
            [o.booking_id for o in self.booked],
        )
        return {r["booking_id"]: r["n"] for r in rows}

    async def ledger_charges_at_this_price(self) -> int:
        """Every charge the provider made at this sale's price since it opened, keyed or not."""
        rows = await self.harness.sql(
            "payments",
            "SELECT count(*) AS n FROM simulator_charges WHERE operation = 'charge' "
            "AND amount = ANY($1::numeric[]) AND created_at >= $2",
            sorted({self.price * o.quantity for o in self.orders}),
            self.started,
        )
        return rows[0]["n"]

    async def notifications(self) -> list[dict[str, Any]]:
        rows = await self.harness.sql(
            "notifications",
            """
            SELECT id::text, kind, context->>'booking_id' AS booking_id, status
            FROM notifications WHERE context->>'booking_id' = ANY($1::text[])
        """,
            [o.booking_id for o in self.booked],
        )
        return [dict(r) for r in rows]

    async def report(self) -> dict[str, Any]:
        status, body, _ = await self.api.call(
            "GET", f"/analytics/report?event_id={self.event_id}", self.organizer
        )
        return body["totals"] if status == 200 else {}

    def truth(self) -> dict[str, Any]:
        paid = [o for o in self.booked if o.paid]
        declined = [o for o in self.booked if not o.paid]
        return {
            "bookings_created": len(self.booked),
            "bookings_confirmed": len(paid),
            "bookings_cancelled": len(declined),
            "payments_succeeded": len(paid),
            "payments_failed": len(declined),
            "tickets_sold": sum(o.quantity for o in paid),
            "revenue": {"EUR": f"{sum(self.price * o.quantity for o in paid):.2f}"} if paid else {},
        }

    async def settled(self) -> bool:
        """Has every effect of every order arrived (the platform converged)?"""
        statuses = await self.booking_statuses()
        if any(statuses.get(o.booking_id) != o.final_status for o in self.booked):
            return False
        notes = await self.notifications()
        if len({(n["booking_id"], n["kind"]) for n in notes}) < len(self.booked):
            return False
        if any(n["status"] != "sent" for n in notes):
            return False
        totals = await self.report()
        return all(totals.get(k) == v for k, v in self.truth().items() if v)

    async def audit(self, name: str, **detail: Any) -> list[Counts]:
        """Jepsen counts per kind of effect: final state, charge, notification, count."""
        statuses = await self.booking_statuses()
        charges = await self.charges()
        notes = await self.notifications()
        totals = await self.report()
        sink = self.harness.platform.mail.messages
        by_message_id: dict[str, int] = {}
        for mail in sink:
            mid = str(mail.message["Message-ID"] or "")
            by_message_id[mid] = by_message_id.get(mid, 0) + 1

        sent = [o.booking_id for o in self.booked]
        expected_kind = {o.booking_id: o.notification_kind for o in self.booked}
        note_counts: dict[str, int] = {}
        unexpected = [n for n in notes if n["kind"] != expected_kind[n["booking_id"]]]
        mails: dict[str, int] = {}
        for n in notes:
            if n["kind"] == expected_kind[n["booking_id"]]:
                note_counts[n["booking_id"]] = note_counts.get(n["booking_id"], 0) + 1
                # distinct messages (Message-ID), as a mail client shows them
                mails[n["booking_id"]] = mails.get(n["booking_id"], 0) + sum(
                    1 for mid in by_message_id if n["id"] in mid
                )
        counted = {k: (totals.get(k), v) for k, v in self.truth().items() if totals.get(k) != v}
        results = [
            Counts.of(
                f"{name} / booking final state",
                sent=sent,
                effects={
                    o.booking_id: int(statuses.get(o.booking_id) == o.final_status)
                    for o in self.booked
                },
            ),
            Counts.of(
                f"{name} / provider charges",
                sent=sent,
                effects=charges,
                ledger_rows_at_price=await self.ledger_charges_at_this_price(),
            ),
            Counts.of(
                f"{name} / notifications stored",
                sent=sent,
                effects=note_counts,
                unexpected_kinds=len(unexpected),
            ),
            # SMTP is at-least-once: a notifications process killed after the server accepted a
            # mail and before it recorded "sent" sends it again on restart, with the same
            # Message-ID (derived from the notification id) so clients show it once. Counted
            # apart as resends, not as duplicated notifications.
            Counts.of(
                f"{name} / e-mails received",
                sent=sent,
                effects=mails,
                resends_same_message_id=sum(
                    c - 1
                    for mid, c in by_message_id.items()
                    if c > 1 and any(n["id"] in mid for n in notes)
                ),
            ),
        ]
        results[2].duplicated += len(unexpected)  # e.g. a cancellation notice on a paid booking
        results.append(
            Counts(
                name=f"{name} / analytics totals",
                sent=len(self.truth()),
                confirmed=len(self.truth()) - len(counted),
                lost=sum(1 for k, (got, want) in counted.items() if _less(got, want)),
                duplicated=sum(1 for k, (got, want) in counted.items() if not _less(got, want)),
                detail={"mismatches": counted} if counted else {},
            )
        )
        failed = [o.errors for o in self.orders if o.errors]
        depths = await asyncio.to_thread(self.harness.queue_depths)
        detail["dead_lettered"] = {k: v for k, v in depths.items() if k.endswith(".dlq") and v}
        detail["queued"] = {k: v for k, v in depths.items() if not k.endswith(".dlq") and v}
        detail["outbox_backlog"] = await self.harness.outbox_backlog()
        print(
            f"\n[jepsen] {name}: orders={len(self.orders)} booked={len(self.booked)} "
            f"client_errors={len(failed)} {failed[:3]} {' '.join(f'{k}={v}' for k, v in detail.items())}"
        )
        for c in results:
            c.report()
        return results


def _less(got: Any, want: Any) -> bool:
    if got is None:
        return True
    if isinstance(want, dict):
        return any(Decimal(got.get(k, "0")) < Decimal(v) for k, v in want.items())
    return got < want
