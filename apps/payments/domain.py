"""What payments knows about a booking (what is due) and the payments made for it. No I/O here.

A booking's *due* is like Stripe's PaymentIntent: it is recorded when booking tells us what the
booking costs and reserves the id its one payment will carry. That id is what the provider's
idempotency keys are derived from, so a retried charge (after a crash or a timeout) reaches the
provider with the same key and is never charged twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from kit.errors import DomainError

DueStatus = Literal["open", "paid", "payment_failed", "expired", "cancelled"]
PaymentStatus = Literal["succeeded", "failed", "refunded"]

# Order tolerance: which states each booking message moves a due out of. A booking that expired
# or was cancelled stays unpayable whatever arrives later; a paid one is not "expired" by a late
# expiry (booking confirms or refunds it).
EXPIRES_FROM: tuple[DueStatus, ...] = ("open",)
CANCELS_FROM: tuple[DueStatus, ...] = ("open", "paid", "payment_failed", "expired")


class PaymentError(DomainError):
    """A rule of payments was broken; each subclass is one reason a client can act on, and says
    which answer it is."""


class BookingNotFound(PaymentError):
    """Unknown booking, not yet known here, or somebody else's (never reveal which)."""

    status, code = 404, "booking-not-found"

    def __init__(self) -> None:
        super().__init__("No such booking (a new booking may take a moment to be known here).")


class NotPayable(PaymentError):
    """The booking cannot be paid now; each subclass says why (a 409 with its own code)."""


class BookingAlreadyPaid(NotPayable):
    status, code = 409, "booking-already-paid"


class BookingPaymentFailed(NotPayable):
    status, code = 409, "booking-payment-failed"


class BookingExpired(NotPayable):
    status, code = 409, "booking-expired"


class BookingCancelled(NotPayable):
    status, code = 409, "booking-cancelled"


class PaymentNotFound(PaymentError):
    status, code = 404, "payment-not-found"


class InvalidPaymentMethod(PaymentError):
    """The provider refused the payment method itself (unknown token): nothing was charged."""

    code, field_in = "invalid-payment-method", "body"

    def __init__(self, detail: str, *, field: str | None = "payment_method.token") -> None:
        super().__init__(detail, field=field)


class ProviderError(PaymentError):
    """The provider could not be asked or answered with an error: nothing is recorded."""

    status, code = 502, "payment-provider-error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or "The payment provider failed.")


class RefundDeclined(ProviderError):
    """The provider refused a refund (nothing went back): a final answer, not a failure to ask
    again. ``reason`` is the provider's machine-readable why."""

    code = "refund-declined"

    def __init__(self, detail: str, *, reason: str = "provider_declined") -> None:
        super().__init__(detail)
        self.reason = reason


class ProviderIdempotencyConflict(ProviderError):
    """The provider already saw this idempotency key with different parameters."""

    status, code = 409, "payment-attempt-conflict"


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str
    failure_reason: str | None = None


@dataclass(frozen=True)
class RefundResult:
    reference: str


def charge_key(payment_id: uuid.UUID) -> str:
    return f"{payment_id}:charge"


def refund_key(payment_id: uuid.UUID, refund_id: uuid.UUID | None = None) -> str:
    """The provider's idempotency key of one refund: its id; a whole refund asked without an id
    (the only kind there was before partial refunds) keeps the key it always had."""
    return f"{payment_id}:refund" if refund_id is None else f"refund:{refund_id}"


def whole_refund_id(payment_id: uuid.UUID) -> uuid.UUID:
    """The id of "the whole remaining amount, once" asked without a refund id: derived from the
    payment, so every such command names the same refund and only the first is made."""
    return uuid.uuid5(payment_id, "refund")


RefundStatus = Literal["succeeded", "failed"]


@dataclass(frozen=True)
class Refund:
    """One refund of a payment, recorded with its outcome (made, or refused and why)."""

    id: uuid.UUID
    payment_id: uuid.UUID
    booking_id: uuid.UUID
    amount: Decimal
    status: RefundStatus
    reason: str
    provider_reference: str | None
    failure_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class BookingDue:
    booking_id: uuid.UUID
    user_id: uuid.UUID
    event_id: uuid.UUID
    amount: Decimal
    currency: str
    status: DueStatus
    payment_id: uuid.UUID
    expires_at: datetime | None
    correlation_id: uuid.UUID | None
    updated_at: datetime

    def check_payable(self, *, by: uuid.UUID, now: datetime) -> None:
        if self.user_id != by:
            raise BookingNotFound()
        if self.status == "paid":
            raise BookingAlreadyPaid("This booking is already paid.")
        if self.status == "payment_failed":
            raise BookingPaymentFailed(
                "A payment of this booking failed; the booking is being cancelled."
            )
        if self.status == "cancelled":
            raise BookingCancelled("This booking was cancelled.")
        if self.status == "expired" or (self.expires_at is not None and now >= self.expires_at):
            raise BookingExpired("The hold of this booking expired before it was paid.")

    def settled(self, payment: Payment) -> DueStatus:
        return "paid" if payment.status == "succeeded" else "payment_failed"


@dataclass(frozen=True)
class Payment:
    id: uuid.UUID
    booking_id: uuid.UUID
    user_id: uuid.UUID
    event_id: uuid.UUID | None
    amount: Decimal
    currency: str
    status: PaymentStatus
    failure_reason: str | None
    provider_reference: str
    refund_reference: str | None
    created_at: datetime
    updated_at: datetime
    refunded_at: datetime | None = None
    refunded_amount: Decimal = Decimal("0")

    @classmethod
    def from_charge(cls, due: BookingDue, result: ChargeResult, *, now: datetime) -> Payment:
        return cls(
            id=due.payment_id,
            booking_id=due.booking_id,
            user_id=due.user_id,
            event_id=due.event_id,
            amount=due.amount,
            currency=due.currency,
            status="succeeded" if result.succeeded else "failed",
            failure_reason=None if result.succeeded else (result.failure_reason or "declined"),
            provider_reference=result.reference,
            refund_reference=None,
            created_at=now,
            updated_at=now,
        )

    @property
    def remaining(self) -> Decimal:
        """What can still be refunded: captured and not yet given back (nothing if not captured)."""
        return self.amount - self.refunded_amount if self.status == "succeeded" else Decimal(0)

    def refunded(self, result: RefundResult, *, total: Decimal, now: datetime) -> Payment:
        """After a refund that took the refunded total to ``total``: ``refunded`` once whole."""
        return replace(
            self,
            status="refunded" if total >= self.amount else self.status,
            refund_reference=result.reference,
            refunded_at=now,
            refunded_amount=total,
            updated_at=now,
        )

    def visible_to(self, user_id: uuid.UUID, *, is_admin: bool) -> bool:
        return is_admin or self.user_id == user_id
