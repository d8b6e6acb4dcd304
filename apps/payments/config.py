"""Settings of the payments service (everything in :class:`ServiceSettings` plus the provider)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kit.settings import ServiceSettings


class PaymentsSettings(ServiceSettings):
    payment_provider: Literal["simulator"] = Field(
        default="simulator",
        description="Which payment provider charges cards. `simulator` is the built-in "
        "card-network simulator (test tokens `tok_visa`, `tok_chargeDeclined`); it moves no "
        "real money.",
    )
