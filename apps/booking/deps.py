"""The booking service's dependencies: the kit's (database, settings), the booking repository
for its database and this replica's availability cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

from apps.booking.adapters.availability import AvailabilityCache
from apps.booking.adapters.live import LiveAvailability
from apps.booking.adapters.repository import BookingRepository
from apps.booking.adapters.repository_sqlite import SqliteBookingRepository
from apps.booking.config import BookingSettings
from kit.db import Database
from kit.deps import ServiceDeps, settings_of

if TYPE_CHECKING:
    from kit.service import Service


@dataclass
class BookingDeps(ServiceDeps):
    settings: BookingSettings
    # What this replica recently saw of each event's seats (see the adapter's docstring); the
    # routes, the early-refusal lane, the subscribers and the sweeper share it.
    availability: AvailabilityCache
    # The booking repository class for this database, handed to every use case (handlers.py).
    repository: type[BookingRepository]
    # This replica's open availability streams and their one watcher (entrypoints/live.py).
    live: LiveAvailability

    @classmethod
    def build(cls, service: Service) -> BookingDeps:
        settings = settings_of(service, BookingSettings)
        cache = AvailabilityCache(settings.booking_availability_cache_seconds)
        return cls(
            db=service.db,
            settings=settings,
            availability=cache,
            repository=repository_for(service.db),
            live=LiveAvailability(),
        )


def repository_for(db: Database) -> type[BookingRepository]:
    """PostgreSQL's repository (one tuned statement per change), or on SQLite (the embedded
    mode) its twin, which makes the same changes with plain statements."""
    return BookingRepository if db.is_postgres else SqliteBookingRepository


def availability_of(service: Service) -> AvailabilityCache:
    """The booking service's availability cache (made with the service)."""
    return BookingDeps.of(service).availability


Deps = Annotated[BookingDeps, Depends(BookingDeps.of_request)]
