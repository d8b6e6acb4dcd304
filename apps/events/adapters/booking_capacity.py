"""The capacity guard: before events commits a capacity *decrease*, booking applies it (only if
it is not below the seats already held or sold), so organizers get their 409 where they ask.

Booking's ``PUT /internal/events/{id}/capacity`` is called with the organizer's own token.
Answers: 200 applied; 404 booking does not know the event yet (nothing can be held: accepted);
409 below held + sold; anything else, or no answer within the timeout: 503, nothing changed.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp

from apps.events.domain import EventError


class CapacityBelowBooked(EventError):
    """The new capacity is below the seats booking has already held or sold."""

    status, code = 409, "capacity-below-booked"


class CapacityCheckUnavailable(EventError):
    """Booking could not confirm the capacity change (down, slow, or erroring): nothing
    changed, the organizer may try again."""

    status, code = 503, "booking-unavailable"
    headers = {"Retry-After": "1"}


class BookingCapacityGuard:
    def __init__(self, booking_url: str, *, timeout: float = 2.0) -> None:
        self.booking_url = booking_url.rstrip("/")
        self.timeout = timeout

    async def apply(
        self,
        event_id: uuid.UUID,
        capacity: int,
        *,
        authorization: str | None,
        ticket_type_id: uuid.UUID | None = None,
    ) -> None:
        """Apply the event's new capacity (or, with ``ticket_type_id``, that type's own) at
        booking, or raise."""
        url = f"{self.booking_url}/internal/events/{event_id}/capacity"
        body: dict[str, object] = {"capacity": capacity}
        if ticket_type_id is not None:
            body["ticket_type_id"] = str(ticket_type_id)
        headers = {"Authorization": authorization} if authorization else {}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.put(url, json=body, headers=headers) as resp,
            ):
                status = resp.status
                body = await resp.json(content_type=None) if status == 409 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise CapacityCheckUnavailable(
                "The booking service could not confirm the capacity change; try again.",
                field="capacity",
            ) from exc
        if status in (200, 404):
            return
        if status == 409:
            detail = (body or {}).get(
                "detail"
            ) or "Capacity is below the seats already held or sold."
            raise CapacityBelowBooked(detail, field="capacity")
        raise CapacityCheckUnavailable(
            f"The booking service refused the capacity check ({status}); try again.",
            field="capacity",
        )
