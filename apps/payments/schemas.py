"""HTTP request and response bodies of the payments API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from apps.payments.domain import Payment, PaymentStatus
from contracts.envelope import MoneyAmount


class CardPaymentMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["card"] = Field(description="Only cards for now.")
    token: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="Card token from the provider's client-side library. The built-in "
        "simulator accepts `tok_visa` (succeeds) and `tok_chargeDeclined` (declined).",
        examples=["tok_visa"],
    )


class PaymentProcess(BaseModel):
    model_config = ConfigDict(extra="forbid")

    booking_id: uuid.UUID = Field(description="The booking to pay; the amount is the booking's.")
    payment_method: CardPaymentMethod


class PaymentPublic(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    user_id: uuid.UUID
    event_id: uuid.UUID | None
    status: PaymentStatus = Field(
        description="succeeded, failed, or refunded (once refunded in full)."
    )
    amount: MoneyAmount
    currency: str
    failure_reason: str | None = Field(
        description="Why a failed payment failed.", examples=["card_declined"]
    )
    created_at: datetime
    updated_at: datetime
    refunded_at: datetime | None = Field(description="When the latest refund was made.")
    refunded_amount: MoneyAmount = Field(
        description="Everything refunded so far (partial refunds add up; never above `amount`).",
        examples=["15.00"],
    )

    @classmethod
    def of(cls, payment: Payment) -> PaymentPublic:
        return cls.model_validate(payment, from_attributes=True)
