"""Use cases of the payments service: ``verb_noun(...)``; each emits its messages on the unit of
work, so a state change and what it tells the world commit together."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from kit.db import Database
from kit.uow import UnitOfWork
from kit.inbox import OneStatementHandler, Statement
from kit import metrics
from kit.crosscheck import refuse
from kit.listing import read_page
from kit.security import Principal
from apps.payments.adapters.provider import PaymentProvider
from apps.payments.adapters.repository import (
    DueRepository,
    PaymentRepository,
    RefundRepository,
    add_due_statement,
    end_due_statement,
)
from apps.payments.domain import (
    CANCELS_FROM,
    EXPIRES_FROM,
    BookingDue,
    BookingNotFound,
    DueStatus,
    Payment,
    PaymentNotFound,
    Refund,
    RefundDeclined,
    charge_key,
    refund_key,
    whole_refund_id,
)
from contracts.envelope import caused_by
from contracts.messages import (
    BookingCancelled,
    BookingCreated,
    BookingDetails,
    BookingExpired,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
    RefundRequested,
)

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _due(msg: BookingDetails, status: DueStatus, expires_at: datetime | None = None) -> BookingDue:
    return BookingDue(
        booking_id=msg.booking_id,
        user_id=msg.user_id,
        event_id=msg.event_id,
        amount=msg.amount,
        currency=msg.currency,
        status=status,
        payment_id=uuid.uuid4(),
        expires_at=expires_at,
        correlation_id=msg.correlation_id,
        updated_at=_now(),
    )


# --- what booking tells us --------------------------------------------------------------------
#
# Each is one write, declared once (OneStatementHandler): on PostgreSQL the consumer runs it with
# its inbox mark as one statement, on SQLite after the mark in a unit of work.


def _opened(msg: BookingCreated) -> BookingDue:
    return _due(msg, "open", msg.expires_at)


async def _record_booking_due_statement(msg: BookingCreated, _conn: AsyncConnection) -> Statement:
    # A booking already known (a duplicate, or one that expired/was cancelled first) is left as is.
    return add_due_statement(_opened(msg))


async def _close_expired_statement(msg: BookingExpired, _conn: AsyncConnection) -> Statement:
    return end_due_statement(_due(msg, "expired"), from_statuses=EXPIRES_FROM)


async def _close_cancelled_statement(msg: BookingCancelled, _conn: AsyncConnection) -> Statement:
    return end_due_statement(_due(msg, "cancelled"), from_statuses=CANCELS_FROM)


record_booking_due = OneStatementHandler(_record_booking_due_statement)
close_expired_booking = OneStatementHandler(_close_expired_statement)
close_cancelled_booking = OneStatementHandler(_close_cancelled_statement)


# --- charging -----------------------------------------------------------------------------------


def _payment_fields(payment: Payment) -> dict[str, object]:
    return {
        "payment_id": payment.id,
        "booking_id": payment.booking_id,
        "user_id": payment.user_id,
        "event_id": payment.event_id,
        "amount": payment.amount,
        "currency": payment.currency,
    }


async def process_payment(
    uow: UnitOfWork,
    *,
    provider: PaymentProvider,
    booking_id: uuid.UUID,
    user_id: uuid.UUID,
    token: str,
) -> Payment:
    """Charge the booking's due once. The due's row stays locked until commit, so concurrent
    requests for one booking queue up and find it paid; the provider key comes from the payment
    id reserved on the due, so even a charge retried after a crash is made only once."""
    dues = DueRepository(uow.conn)
    due = await dues.get(booking_id, for_update=True)
    if due is None:
        raise BookingNotFound()
    now = _now()
    due.check_payable(by=user_id, now=now)
    result = await provider.charge(
        amount=due.amount,
        currency=due.currency,
        token=token,
        idempotency_key=charge_key(due.payment_id),
    )
    payment = Payment.from_charge(due, result, now=now)
    saga = {"correlation_id": due.correlation_id}
    message: PaymentConfirmed | PaymentFailed
    if payment.status == "succeeded":
        message = PaymentConfirmed(
            **saga, **_payment_fields(payment), provider_reference=payment.provider_reference
        )
    else:
        message = PaymentFailed(
            **saga, **_payment_fields(payment), failure_reason=payment.failure_reason or "declined"
        )
    # its row is written by the settling statement itself (always: it has no guard)
    row = uow.publish(message, inline=True)[0]
    await PaymentRepository(uow.conn).settle(
        payment, due_status=due.settled(payment), now=now, outbox_row=row
    )
    return payment


# --- refunds ------------------------------------------------------------------------------------


def refund_payment(provider: PaymentProvider):  # noqa: ANN201 - a consume_once handler
    async def handler(msg: RefundRequested, uow: UnitOfWork) -> None:
        """Give back part or all of a booking's successful payment, never more than captured.

        The payment row is locked, so refunds of one payment queue up here (and each reads the
        total the previous one left); the limit itself is the conditional UPDATE of
        ``take_refund`` (plus a CHECK), which holds whatever runs. The same refund id twice is
        one refund; the provider's key is the refund id, so a retry after a crash is made once.
        """
        payments = PaymentRepository(uow.conn)
        payment = await payments.for_booking(msg.booking_id, for_update=True)
        # The command is checked against the payment we captured, never trusted: it must name
        # that payment's payer (and the payment, if it names one).
        if payment is None:
            refuse(msg, "unknown_payment", f"booking {msg.booking_id} has no payment")
        if msg.user_id != payment.user_id:
            refuse(msg, "user_mismatch", f"payment {payment.id} is not user {msg.user_id}'s")
        if msg.payment_id is not None and msg.payment_id != payment.id:
            refuse(
                msg,
                "payment_mismatch",
                f"booking {msg.booking_id} was paid by {payment.id}, not {msg.payment_id}",
            )
        refund_id = msg.refund_id or whole_refund_id(payment.id)
        refunds = RefundRepository(uow.conn)
        done = await refunds.get(refund_id)
        if done is not None:
            if done.payment_id != payment.id:
                refuse(msg, "refund_mismatch", f"refund {refund_id} is of another payment")
            log.info("refund %s of payment %s already %s", refund_id, payment.id, done.status)
            return
        if payment.status == "failed":
            log.info("refund of payment %s skipped: it captured nothing", payment.id)
            return
        amount = payment.remaining if msg.amount is None else msg.amount
        if amount <= 0:
            log.info("refund %s of payment %s skipped: nothing to give back", refund_id, payment.id)
            return
        now = _now()
        refund = Refund(
            id=refund_id,
            payment_id=payment.id,
            booking_id=payment.booking_id,
            amount=amount,
            status="succeeded",
            reason=msg.reason,
            provider_reference=None,
            failure_reason=None,
            created_at=now,
        )
        # what both answers to this command (payment_refunded, refund_failed) carry
        fields = {
            **caused_by(msg),
            **_payment_fields(payment),
            "amount": amount,
            "reason": msg.reason,
            "refund_id": refund_id,
        }
        total = await payments.take_refund(payment.id, amount, now=now)
        if total is None:
            # Booking refuses such a refund before asking (422); one arriving anyway is
            # answered (booking learns its refund failed) and counted for an operator.
            metrics.refused(msg.routing_key, "exceeds_remaining")
            log.warning(
                "refund %s of %s refused: payment %s has %s left to refund",
                refund_id,
                amount,
                payment.id,
                payment.remaining,
            )
            await _refund_failed(uow, refund, fields, payment.refunded_amount, "exceeds_remaining")
            return
        try:
            result = await provider.refund(
                charge_ref=payment.provider_reference,
                amount=amount,
                idempotency_key=refund_key(payment.id, msg.refund_id),
            )
        except RefundDeclined as declined:
            await payments.give_back_refund(payment.id, amount, now=now)
            await _refund_failed(uow, refund, fields, total - amount, declined.reason)
            return
        # any other provider error propagates: nothing is kept, the command is delivered again
        await payments.save(payment.refunded(result, total=total, now=now))
        await refunds.add(replace(refund, provider_reference=result.reference))
        uow.publish(
            PaymentRefunded(**fields, provider_reference=result.reference, refunded_total=total)
        )

    return handler


async def _refund_failed(
    uow: UnitOfWork, refund: Refund, fields: dict, total: Decimal, why: str
) -> None:
    """Record ``refund`` as not made and tell booking (its refund shows ``failed``)."""
    await RefundRepository(uow.conn).add(replace(refund, status="failed", failure_reason=why))
    uow.publish(RefundFailed(**fields, failure_reason=why, refunded_total=total))


# --- reads --------------------------------------------------------------------------------------


async def get_payment(db: Database, payment_id: uuid.UUID, viewer: Principal) -> Payment:
    async with db.read() as conn:
        payment = await PaymentRepository(conn).get(payment_id)
    if payment is None or not payment.visible_to(viewer.user_id, is_admin=viewer.is_admin):
        raise PaymentNotFound("No such payment.")
    return payment


async def list_payments(
    db: Database,
    viewer: Principal,
    *,
    limit: int,
    cursor: str | None,
    booking_id: uuid.UUID | None = None,
) -> tuple[list[Payment], str | None]:
    """The viewer's payments, newest first (an admin's view has everybody's)."""
    return await read_page(
        db,
        lambda conn, before, n: PaymentRepository(conn).page(
            limit=n,
            after=before,
            booking_id=booking_id,
            user_id=None if viewer.is_admin else viewer.user_id,
        ),
        limit=limit,
        cursor=cursor,
    )
