"""Wires the payments service: its spec for the kit's app factory."""

from __future__ import annotations

from pathlib import Path

from kit.service import Service, ServiceSpec
from kit.settings import ServiceSettings
from apps.payments.config import PaymentsSettings
from apps.payments.deps import PaymentsDeps
from apps.payments.entrypoints.http import router
from apps.payments.entrypoints.messages import subscribe
from contracts.messages import PaymentConfirmed, PaymentFailed, PaymentRefunded, RefundFailed

SPEC = ServiceSpec(
    name="payments",
    title="Payments service",
    description="Charges bookings through a payment provider (the built-in card-network "
    "simulator by default) and refunds them when booking asks. Learns what each booking owes "
    "from booking's messages; publishes payment confirmed, failed and refunded, and refunds "
    "that were not made.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    publishes=[PaymentConfirmed, PaymentFailed, PaymentRefunded, RefundFailed],
    subscribe=subscribe,
    settings_class=PaymentsSettings,
    deps=PaymentsDeps.build,
)


def build(settings: ServiceSettings | None = None, **overrides: object) -> Service:
    return Service(SPEC, settings, **overrides)
