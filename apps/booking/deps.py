"""The booking service's dependencies: the kit's (database, settings) and this replica's
availability cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

from apps.booking.adapters.availability import AvailabilityCache
from apps.booking.config import BookingSettings
from kit.deps import ServiceDeps, settings_of

if TYPE_CHECKING:
    from kit.service import Service


@dataclass
class BookingDeps(ServiceDeps):
    settings: BookingSettings
    # What this replica recently saw of each event's seats (see the adapter's docstring); the
    # routes, the early-refusal lane, the subscribers and the sweeper share it.
    availability: AvailabilityCache

    @classmethod
    def build(cls, service: Service) -> BookingDeps:
        settings = settings_of(service, BookingSettings)
        cache = AvailabilityCache(settings.booking_availability_cache_seconds)
        return cls(db=service.db, settings=settings, availability=cache)


Deps = Annotated[BookingDeps, Depends(BookingDeps.of_request)]
