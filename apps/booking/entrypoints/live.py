"""Live availability: a plain read with an ``ETag``, a Server-Sent Events stream, and the one
watcher per process that feeds every stream.

The streams never query the database themselves. The watcher reads the availability of every
event that has open streams in this process in ONE statement every
``BOOKING_LIVE_INTERVAL_SECONDS`` and hands the changed snapshots to the streams' queues
(:class:`~apps.booking.adapters.live.LiveAvailability`). Because it reads the database, changes
made by any replica reach the streams within one interval.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sse_starlette import EventSourceResponse, ServerSentEvent

from apps.booking.adapters.live import AvailabilitySnapshot, read_availability
from apps.booking.deps import BookingDeps, Deps
from apps.booking.domain import EventUnknown
from apps.booking.schemas import AvailabilityPublic

if TYPE_CHECKING:
    from kit.service import Service

log = logging.getLogger(__name__)

router = APIRouter(prefix="/booking", tags=["booking"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Event not known to booking"}}


async def _read(deps: BookingDeps, event_id: uuid.UUID) -> AvailabilitySnapshot | None:
    async with deps.db.read() as conn:
        return (await read_availability(conn, [event_id])).get(event_id)


def _known(snapshot: AvailabilitySnapshot | None) -> AvailabilitySnapshot:
    if snapshot is None:
        raise EventUnknown("No such event.")
    return snapshot


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: ``*`` or any listed tag, compared weakly (``W/`` ignored)."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get(
    "/events/{event_id}/availability",
    response_model=AvailabilityPublic,
    responses={304: {"description": "Unchanged since the `ETag` sent in `If-None-Match`"}}
    | NOT_FOUND,
    summary="Seats left of an event and of each ticket type (anyone)",
    description="With an `ETag`; send it back in `If-None-Match` to get 304 while nothing "
    "changed. For updates as they happen, open `.../availability/stream`.",
)
async def get_availability(request: Request, deps: Deps, event_id: uuid.UUID) -> Response:
    snapshot = _known(await _read(deps, event_id))
    headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, snapshot.etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(snapshot.body(), headers=headers)


@router.get(
    "/events/{event_id}/availability/stream",
    responses={
        200: {
            "description": "Server-Sent Events: one `data:` with the availability (as the "
            "plain read answers it) at once, then one within a second of every change, and "
            "keep-alive comments while nothing changes.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }
    | NOT_FOUND,
    summary="Stream an event's availability as it changes (anyone)",
    response_class=EventSourceResponse,
)
async def stream_availability(deps: Deps, event_id: uuid.UUID) -> EventSourceResponse:
    live = deps.live
    # Read before the response starts, for its 404 (an unknown event): what the other streams
    # of the event last got, else one read shared by the streams opening meanwhile.
    read = _known(await live.first(event_id, lambda: _read(deps, event_id)))

    async def events() -> AsyncIterator[bytes]:
        # Subscribed only once the body starts, and released when it ends however it ends: a
        # response never started (the client left first) holds no subscription. What the
        # stream starts with is chosen as it subscribes, so a change since ``read`` reaches it.
        sub, first = live.open(event_id, read)
        try:
            yield _frame(first)
            while True:
                yield _frame(await sub.next())
        finally:
            live.unsubscribe(sub)

    return EventSourceResponse(
        events(),
        ping=deps.settings.booking_live_ping_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@functools.lru_cache(maxsize=1024)
def _frame(snapshot: AvailabilitySnapshot) -> bytes:
    """The snapshot as one SSE event (``id:`` its version, ``data:`` its JSON), encoded once for
    all the streams it goes to, not once per stream."""
    return ServerSentEvent(data=snapshot.json(), id=str(snapshot.version)).encode()


async def watch_once(service: Service, engine: AsyncEngine | None = None) -> int:
    """Read every watched event in one statement and hand changes to their streams; returns
    how many events changed (0 when nothing is watched, without touching the database)."""
    deps = BookingDeps.of(service)
    live = deps.live
    watched = live.watched()
    if not watched:
        return 0
    async with (engine or deps.db.engine).connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        snapshots = await read_availability(conn, watched)
    live.reads += 1
    return live.publish(snapshots)


def _watcher_engine(service: Service) -> AsyncEngine:
    """On PostgreSQL, one connection of the watcher's own: queued behind an on-sale rush in the
    requests' pool, its read (and every stream's update) would wait as long as the slowest
    hold. On SQLite (embedded), the service's engine."""
    db = service.db
    if not db.is_postgres:
        return db.engine
    name = f"{service.settings.service_name}-live"
    return create_async_engine(
        db.url,
        pool_size=1,
        max_overflow=0,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": name}},
    )


async def live_availability_watcher(service: Service) -> None:
    """Every ``BOOKING_LIVE_INTERVAL_SECONDS`` while this process has open availability streams
    (idle, without a query, while it has none), send them what changed."""
    deps = BookingDeps.of(service)
    live = deps.live
    interval = deps.settings.booking_live_interval_seconds
    engine = _watcher_engine(service)
    try:
        while True:
            if not live.watched():
                live.wake.clear()
                await live.wake.wait()
            try:
                await watch_once(service, engine)
            except asyncio.CancelledError:
                raise
            except Exception:  # database hiccup: the streams keep their last snapshot; next tick
                log.exception("reading live availability failed")
            await asyncio.sleep(interval)
    finally:
        if engine is not service.db.engine:
            await engine.dispose()
