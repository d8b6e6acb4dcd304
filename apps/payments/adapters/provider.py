"""Payment providers: the interface a real one (Stripe, Adyen...) would sit behind, and the
built-in card-network SIMULATOR.

Every call carries an idempotency key derived from the payment (see ``domain.charge_key``): the
provider answers a replayed key with the original result and never charges twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from apps.payments.adapters.tables import simulator_charges
from apps.payments.config import PaymentsSettings
from apps.payments.domain import (
    ChargeResult,
    InvalidPaymentMethod,
    ProviderIdempotencyConflict,
    RefundDeclined,
    RefundResult,
)


class PaymentProvider(Protocol):
    async def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult:
        """Charge ``amount`` to the card behind ``token``. A decline is a result, not an error;
        raises :class:`InvalidPaymentMethod` for a token the provider does not accept."""

    async def refund(
        self, *, charge_ref: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        """Give ``amount`` of the charge ``charge_ref`` back (one of possibly several partial
        refunds; ``idempotency_key`` names this one). Raises :class:`RefundDeclined` when the
        provider refuses it (nothing went back), :class:`ProviderError` when it cannot say."""


# The simulator's test cards: token -> failure reason (None: the charge succeeds).
SIMULATOR_CARDS: dict[str, str | None] = {
    "tok_visa": None,
    "tok_mastercard": None,
    "tok_chargeDeclined": "card_declined",
    "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
}


_RECORD = insert(simulator_charges).on_conflict_do_nothing().returning(simulator_charges)
_BY_KEY = sa.select(simulator_charges).where(
    simulator_charges.c.idempotency_key == sa.bindparam("key")
)

_REFUNDED = sa.select(sa.func.coalesce(sa.func.sum(simulator_charges.c.amount), 0)).where(
    simulator_charges.c.charge_reference == sa.bindparam("charge"),
    simulator_charges.c.operation == "refund",
    simulator_charges.c.status == "succeeded",
)


def _hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


class CardNetworkSimulator:
    """A card-network SIMULATOR that behaves like a real provider and moves no money.

    ``tok_visa`` succeeds, ``tok_chargeDeclined`` is declined (``card_declined``), any other
    token is not a valid payment method. It keeps its own ledger (``simulator_charges``) keyed by
    idempotency key, written on its own connections as if it were another company's system: a
    replayed key returns the original result without a new charge; a key reused with different
    parameters is refused, as real providers do.
    """

    def __init__(self, url: URL) -> None:
        self._schema_ready = True
        self._schema_lock = asyncio.Lock()
        if url.get_backend_name() == "sqlite" and url.database:
            # SQLite (the embedded mode) has one writer per file, and the payment's transaction
            # holds it while it waits for the provider: the ledger gets a file of its own.
            url = url.set(database=str(Path(url.database).with_suffix(".simulator.db")))
            self._schema_ready = False
        # Its own pool (not the service's): a request holding a service connection while it
        # waits for the "provider" can never starve the provider. A pool, not a connection per
        # charge: opening a PostgreSQL connection costs more than the charge itself.
        if url.get_backend_name() == "sqlite":
            self._engine: AsyncEngine = create_async_engine(url, poolclass=NullPool)
            self._ledger = self._engine.begin
        else:
            self._engine = create_async_engine(url, pool_size=4, max_overflow=4)
            # a ledger write is one statement (a replay's read comes after it): autocommit, no
            # BEGIN/COMMIT round trips; the same pool
            self._ledger = self._engine.execution_options(isolation_level="AUTOCOMMIT").connect

    async def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        async with self._schema_lock:  # two first charges at once must not both CREATE TABLE
            if not self._schema_ready:
                async with self._engine.begin() as conn:
                    await conn.run_sync(lambda c: simulator_charges.create(c, checkfirst=True))
                self._schema_ready = True

    async def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult:
        if token not in SIMULATOR_CARDS:
            raise InvalidPaymentMethod(
                "The card token is not valid (simulator test cards: tok_visa, tok_chargeDeclined)."
            )
        failure = SIMULATOR_CARDS[token]
        row = await self._record(
            idempotency_key,
            operation="charge",
            reference=f"ch_sim_{uuid.uuid4().hex[:24]}",
            request_hash=_hash("charge", f"{amount:.2f}", currency, token),
            amount=amount,
            currency=currency,
            status="failed" if failure else "succeeded",
            failure_reason=failure,
        )
        return ChargeResult(
            succeeded=row.status == "succeeded",
            reference=row.reference,
            failure_reason=row.failure_reason,
        )

    async def refund(
        self, *, charge_ref: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        await self._ensure_schema()
        async with self._engine.connect() as conn:
            charge = (
                await conn.execute(
                    sa.select(simulator_charges).where(
                        simulator_charges.c.reference == charge_ref,
                        simulator_charges.c.operation == "charge",
                    )
                )
            ).first()
            replay = (await conn.execute(_BY_KEY, {"key": idempotency_key})).first()
            refunded = (await conn.execute(_REFUNDED, {"charge": charge_ref})).scalar_one()
        if charge is None or charge.status != "succeeded":
            raise RefundDeclined(
                f"No successful charge {charge_ref} to refund.", reason="no_charge"
            )
        # Like a real provider, it refuses refunds beyond what is left of the charge (a replay
        # of a refund already made is answered by its ledger row, not counted twice).
        if replay is None and refunded + amount > charge.amount:
            raise RefundDeclined(
                f"A refund of {amount} exceeds the {charge.amount - refunded} left of the charge.",
                reason="exceeds_charge",
            )
        row = await self._record(
            idempotency_key,
            operation="refund",
            reference=f"re_sim_{uuid.uuid4().hex[:24]}",
            request_hash=_hash("refund", charge_ref, f"{amount:.2f}"),
            amount=amount,
            currency=charge.currency,
            status="succeeded",
            charge_reference=charge_ref,
        )
        return RefundResult(reference=row.reference)

    async def _record(self, key: str, **values: object) -> sa.Row:
        """Insert the ledger row for ``key`` or, on a replay, return the one already there."""
        await self._ensure_schema()
        async with self._ledger() as conn:
            # A concurrent request with the same key waits here for the first to commit.
            inserted = (await conn.execute(_RECORD, {"idempotency_key": key, **values})).first()
            if inserted is not None:
                return inserted
            existing = (await conn.execute(_BY_KEY, {"key": key})).one()
        if existing.request_hash != values["request_hash"]:
            raise ProviderIdempotencyConflict(
                "The payment provider already received this payment with different details."
            )
        return existing

    async def close(self) -> None:
        await self._engine.dispose()


def make_provider(settings: PaymentsSettings) -> PaymentProvider:
    if settings.payment_provider == "simulator":
        return CardNetworkSimulator(settings.sqlalchemy_url)
    raise ValueError(f"unknown PAYMENT_PROVIDER {settings.payment_provider!r}")
