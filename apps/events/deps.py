"""The events service's dependencies: the kit's (database, settings) and the capacity guard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

from apps.events.adapters.booking_capacity import BookingCapacityGuard
from apps.events.adapters.vouchers import VoucherRepository
from apps.events.config import EventsSettings
from apps.events.entrypoints.messages import voucher_use_queues
from kit.bindings import OptionalBindings
from kit.deps import ServiceDeps, settings_of

if TYPE_CHECKING:
    from kit.service import Service


@dataclass
class EventsDeps(ServiceDeps):
    settings: EventsSettings
    # Asks booking to apply a capacity decrease before it is committed; None: no check.
    capacity_guard: BookingCapacityGuard | None
    # Booking's messages reach the service only while it has vouchers (their uses are counted).
    bindings: OptionalBindings

    @classmethod
    def build(cls, service: Service) -> EventsDeps:
        settings = settings_of(service, EventsSettings)
        guard = (
            BookingCapacityGuard(settings.booking_url, timeout=settings.booking_timeout_seconds)
            if settings.booking_url
            else None
        )
        return cls(
            db=service.db,
            settings=settings,
            capacity_guard=guard,
            bindings=OptionalBindings(
                service.broker,
                voucher_use_queues(),
                VoucherRepository.any_exist,
                enabled=service.db.is_postgres,
            ),
        )


Deps = Annotated[EventsDeps, Depends(EventsDeps.of_request)]
