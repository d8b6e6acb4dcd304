"""HTTP routes of the payments service. They translate HTTP into use-case calls, nothing more."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from kit.idempotency import IdempotencyKey, idempotent
from kit.pagination import Cursor, Limit, Page
from kit.security import CurrentUser
from kit.uow import UnitOfWork
from apps.payments import handlers
from apps.payments.deps import Deps
from apps.payments.schemas import PaymentProcess, PaymentPublic
from observability import set_span_attributes

router = APIRouter(prefix="/payments", tags=["payments"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid access token"},
    404: {"description": "No such booking or payment (or not yours)"},
    409: {
        "description": "The booking is not payable: already paid, payment failed, expired or "
        "cancelled (each has its own problem `type`)"
    },
    422: {
        "description": "Invalid fields, invalid payment method, or an Idempotency-Key reused "
        "with another body"
    },
}


@router.post(
    "/process",
    status_code=201,
    response_model=PaymentPublic,
    responses=ERRORS,
    summary="Pay a booking (its owner). A declined card is a 201 with status `failed`.",
)
async def process_payment(
    deps: Deps, body: PaymentProcess, user: CurrentUser, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    set_span_attributes(**{"booking.id": body.booking_id, "user.id": user.user_id})

    async def run(uow: UnitOfWork) -> tuple[int, PaymentPublic]:
        # A refusal (a PaymentError) propagates: stored for the key's replays, then answered
        # by the kit's handler.
        payment = await handlers.process_payment(
            uow,
            provider=deps.provider,
            booking_id=body.booking_id,
            user_id=user.user_id,
            token=body.payment_method.token,
        )
        set_span_attributes(**{"event.id": payment.event_id})
        return 201, PaymentPublic.of(payment)

    return await idempotent(
        deps.db,
        scope=f"{user.user_id}:payments.process",
        key=idempotency_key,
        body=body.model_dump(mode="json"),
        run=run,
    )


@router.get(
    "",
    response_model=Page[PaymentPublic],
    summary="List your payments, newest first",
    responses={401: ERRORS[401]},
)
async def list_payments(
    deps: Deps,
    user: CurrentUser,
    limit: Limit = 20,
    cursor: Cursor = None,
    booking_id: Annotated[uuid.UUID | None, Query(description="Only this booking's")] = None,
) -> Page[PaymentPublic]:
    items, next_cursor = await handlers.list_payments(
        deps.db, user, limit=limit, cursor=cursor, booking_id=booking_id
    )
    return Page[PaymentPublic](items=[PaymentPublic.of(p) for p in items], next_cursor=next_cursor)


@router.get(
    "/{payment_id}",
    response_model=PaymentPublic,
    summary="A payment (its payer or an admin)",
    responses={401: ERRORS[401], 404: ERRORS[404]},
)
async def get_payment(deps: Deps, payment_id: uuid.UUID, user: CurrentUser) -> PaymentPublic:
    return PaymentPublic.of(await handlers.get_payment(deps.db, payment_id, user))
