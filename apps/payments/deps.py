"""The payments service's dependencies: the kit's (database, settings) and its payment provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

from apps.payments.adapters.provider import PaymentProvider, make_provider
from apps.payments.config import PaymentsSettings
from kit.deps import ServiceDeps, settings_of

if TYPE_CHECKING:
    from kit.service import Service


@dataclass
class PaymentsDeps(ServiceDeps):
    settings: PaymentsSettings
    # One provider per service, made from its settings with the service (routes and the refund
    # subscriber share it).
    provider: PaymentProvider

    @classmethod
    def build(cls, service: Service) -> PaymentsDeps:
        settings = settings_of(service, PaymentsSettings)
        return cls(db=service.db, settings=settings, provider=make_provider(settings))


def provider_for(service: Service) -> PaymentProvider:
    """The service's payment provider, made with the service."""
    return PaymentsDeps.of(service).provider


Deps = Annotated[PaymentsDeps, Depends(PaymentsDeps.of_request)]
