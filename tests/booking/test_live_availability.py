"""Live availability: the plain read with its ETag, the Server-Sent Events stream (a real
server, real PostgreSQL), the one-statement-per-tick fan-out, and PostgreSQL and SQLite giving
the same figures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine

from apps.booking import handlers
from apps.booking.adapters.live import AvailabilitySnapshot, LiveAvailability, read_availability
from apps.booking.adapters.repository import BookingRepository
from apps.booking.adapters.repository_sqlite import SqliteBookingRepository
from apps.booking.bootstrap import build
from apps.booking.deps import BookingDeps
from apps.booking.entrypoints.live import stream_availability, watch_once
from contracts.messages import EventCancelled
from kit.db import Database
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.booking.conftest import event_created, feed, later, reserved
from tests.booking.test_ticket_types import types_event
from tests.support.db import postgres_database, sqlite_database
from tests.support.serving import serve
from tests.support.sse import next_data
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


# --- the plain read ---------------------------------------------------------------------------


async def test_availability_has_an_etag_and_is_304_while_nothing_changes(booking, client):
    event = event_created(capacity=10)
    await feed(booking, event)
    url = f"/booking/events/{event.event_id}/availability"

    first = await client.get(url)
    assert first.status_code == 200
    body = first.json()
    assert {k: body[k] for k in ("event_id", "capacity", "available", "held", "sold")} == {
        "event_id": str(event.event_id),
        "capacity": 10,
        "available": 10,
        "held": 0,
        "sold": 0,
    }
    assert [t["available"] for t in body["ticket_types"]] == [10]
    etag = first.headers["etag"]
    assert etag == f'"{body["version"]}"'

    same = await client.get(url, headers={"If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == etag
    assert (await client.get(url, headers={"If-None-Match": f'"x", W/{etag}'})).status_code == 304

    await reserved(booking, event, 3)
    changed = await client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    now = changed.json()
    assert (now["available"], now["held"], now["sold"]) == (7, 3, 0)
    assert now["version"] != body["version"]
    assert changed.headers["etag"] == f'"{now["version"]}"'


async def test_unknown_event_is_404_on_the_read_and_the_stream(booking, client):
    for path in ("availability", "availability/stream"):
        resp = await client.get(f"/booking/events/{uuid.uuid4()}/{path}")
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["type"].endswith("/event-not-found")
    assert BookingDeps.of(booking).live.streams() == 0


async def test_ticket_types_count_their_own_seats_and_the_events_quota(booking, client):
    event, (early, regular, vip) = types_event(capacity=4)
    await feed(booking, event)
    url = f"/booking/events/{event.event_id}/availability"
    body = (await client.get(url)).json()
    assert body["available"] == 4
    # early 3 of its own, regular only the quota, vip 2 of its own
    assert [(t["id"], t["available"]) for t in body["ticket_types"]] == [
        (str(early.ticket_type_id), 3),
        (str(regular.ticket_type_id), 4),
        (str(vip.ticket_type_id), 2),
    ]
    async with UnitOfWork(booking.db) as uow:
        await handlers.reserve_seats(
            uow,
            repository=BookingRepository,
            user=Principal(uuid.uuid4(), "customer", {}),
            event_id=event.event_id,
            lines=[(regular.ticket_type_id, 3)],
            hold_seconds=600,
            max_per_booking=10,
            max_held_per_user=20,
        )
        await uow.commit()
    body = (await client.get(url)).json()
    assert body["available"] == 1
    assert [t["available"] for t in body["ticket_types"]] == [1, 1, 1]

    await feed(booking, later(event, EventCancelled, 2))
    body = (await client.get(url)).json()
    assert body["available"] == 0 and [t["available"] for t in body["ticket_types"]] == [0, 0, 0]


# --- the stream -------------------------------------------------------------------------------


@pytest.fixture
async def live_booking(start_service) -> AsyncIterator[Any]:
    async with start_service(
        build, booking_sweep_interval_seconds=0, booking_live_interval_seconds=0.25
    ) as svc:
        yield svc


@pytest.fixture
async def served(live_booking) -> AsyncIterator[str]:
    async with serve(live_booking.api, lifespan="off") as url:
        yield url


@contextlib.asynccontextmanager
async def streams(url: str, n: int) -> AsyncIterator[list[aiohttp.ClientResponse]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        opened: list[aiohttp.ClientResponse] = []
        try:
            opened = list(
                await asyncio.gather(
                    *(session.get(url, headers={"Accept": "text/event-stream"}) for _ in range(n))
                )
            )
            yield opened
        finally:
            for resp in opened:
                resp.close()


async def test_stream_sends_at_once_then_within_a_second_of_a_booking(live_booking, served):
    event = event_created(capacity=10)
    await feed(live_booking, event)
    url = f"{served}/booking/events/{event.event_id}/availability/stream"
    async with streams(url, 1) as (resp,):
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        started = time.perf_counter()
        first = await next_data(resp, timeout=1)
        assert time.perf_counter() - started < 1
        assert (first["available"], first["held"]) == (10, 0)

        # Written straight to the database, as another replica would: no in-process hint.
        await reserved(live_booking, event, 2)
        changed_at = time.perf_counter()
        second = await next_data(resp, timeout=2)
        assert time.perf_counter() - changed_at < 1
        assert (second["available"], second["held"]) == (8, 2)
        assert second["version"] != first["version"]
    await asyncio.sleep(0.3)
    assert BookingDeps.of(live_booking).live.streams() == 0  # closed stream, unsubscribed


async def test_stream_sends_keep_alive_pings(start_service):
    async with (
        start_service(
            build, booking_sweep_interval_seconds=0, booking_live_ping_seconds=0.2
        ) as svc,
        serve(svc.api, lifespan="off") as base,
    ):
        event = event_created(capacity=3)
        await feed(svc, event)
        async with streams(f"{base}/booking/events/{event.event_id}/availability/stream", 1) as (
            resp,
        ):
            await next_data(resp)
            lines = []
            while not any(line.startswith(":") for line in lines):
                line = await asyncio.wait_for(resp.content.readline(), 2)
                lines.append(line.decode())


async def test_200_streams_cost_one_statement_per_tick_not_one_each(live_booking, served):
    event = event_created(capacity=50)
    await feed(live_booking, event)
    live = BookingDeps.of(live_booking).live
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = Engine  # every engine of the process: the requests' pool and the watcher's own
    url = f"{served}/booking/events/{event.event_id}/availability/stream"
    async with streams(url, 200) as opened:
        firsts = await asyncio.gather(*(next_data(r) for r in opened))
        assert {f["available"] for f in firsts} == {50}
        assert live.streams(event.event_id) == 200

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            reads_before = live.reads
            started = time.perf_counter()
            await reserved(live_booking, event, 5)
            seconds = await asyncio.gather(*(next_data(r, timeout=3) for r in opened))
            await asyncio.sleep(1)  # and a quiet second more
            elapsed = time.perf_counter() - started
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert {s["available"] for s in seconds} == {45}

    reads = [s for s in statements if "FROM inventory LEFT OUTER JOIN type_inventory" in s]
    ticks = live.reads - reads_before
    # one statement per tick for all 200 streams: about elapsed / 0.25 s, nowhere near 200 (a
    # tick whose statement ran just before ``reads`` was taken is counted there, not here)
    assert ticks <= len(reads) <= ticks + 1
    assert 1 <= ticks <= elapsed / 0.25 + 2
    # and nothing else reads per stream (the booking itself is a handful of statements)
    assert len(statements) < ticks + 20


async def test_updates_reach_streams_while_the_requests_pool_is_taken(start_service):
    async with (
        start_service(build, booking_sweep_interval_seconds=0, database_pool_size=1) as svc,
        serve(svc.api, lifespan="off") as base,
    ):
        event = event_created(capacity=10)
        await feed(svc, event)
        url = f"{base}/booking/events/{event.event_id}/availability/stream"
        async with streams(url, 1) as (resp,), svc.db.engine.connect() as taken:
            assert (await next_data(resp))["held"] == 0
            await taken.execute(sa.text("SELECT 1"))  # the pool's only connection, held (a rush)
            elsewhere = create_async_engine(svc.db.url)  # another replica's write
            try:
                async with elsewhere.begin() as conn:
                    await conn.execute(
                        sa.text("UPDATE inventory SET held = held + 2 WHERE event_id = :e"),
                        {"e": event.event_id},
                    )
                changed_at = time.perf_counter()
                changed = await next_data(resp, timeout=3)
                assert time.perf_counter() - changed_at < 1
                assert (changed["held"], changed["available"]) == (2, 8)
            finally:
                await elsewhere.dispose()


async def test_two_streams_on_two_events_share_one_statement(live_booking, served):
    one, two = event_created(capacity=5), event_created(capacity=6)
    await feed(live_booking, one)
    await feed(live_booking, two)
    live = BookingDeps.of(live_booking).live
    base = f"{served}/booking/events"
    async with (
        streams(f"{base}/{one.event_id}/availability/stream", 1) as (a,),
        streams(f"{base}/{two.event_id}/availability/stream", 1) as (b,),
    ):
        assert (await next_data(a))["capacity"] == 5
        assert (await next_data(b))["capacity"] == 6
        assert sorted(live.watched()) == sorted([one.event_id, two.event_id])
        await reserved(live_booking, two, 1)
        assert (await next_data(b, timeout=2))["available"] == 5


# --- opening and closing a stream, tick by tick ----------------------------------------------


@pytest.fixture
async def ticked_booking(start_service) -> AsyncIterator[Any]:
    """A booking service whose watcher reads once, when the first stream opens, and then not
    for an hour: every later tick is the test's own ``watch_once``. Only its database: events
    arrive through ``feed``, the streams are read from their bodies."""
    async with start_service(
        build,
        connect_broker=False,
        outbox_relay=False,
        booking_sweep_interval_seconds=0,
        booking_live_interval_seconds=3600,
    ) as svc:
        yield svc


async def next_frame(body: AsyncIterator[Any], timeout: float = 1.0) -> dict[str, Any]:
    """The ``data:`` of the next event a stream's body yields (as sse-starlette would send it)."""
    frame = await asyncio.wait_for(anext(body), timeout)
    (data,) = [line for line in frame.decode().splitlines() if line.startswith("data:")]
    return json.loads(data.removeprefix("data:"))


async def test_a_change_made_while_a_stream_opens_reaches_it(ticked_booking):
    deps = BookingDeps.of(ticked_booking)
    live = deps.live
    event = event_created(capacity=10)
    await feed(ticked_booking, event)
    # a stream open already: the event is watched, and the watcher has read it
    opened = (await stream_availability(deps, event.event_id)).body_iterator
    assert (await next_frame(opened))["held"] == 0

    async def watcher_has_read() -> bool:
        return live.latest(event.event_id) is not None

    await eventually(watcher_has_read)

    # A new stream's request has read what the event has (and answered 200); its body has not
    # started yet. Meanwhile seats are held and the watcher hands the change to the streams
    # subscribed: the one open.
    opening = (await stream_availability(deps, event.event_id)).body_iterator
    await reserved(ticked_booking, event, 2)
    assert await watch_once(ticked_booking) == 1
    assert (await next_frame(opened))["held"] == 2

    # The new stream starts and shows the change (as its first event, or right after what its
    # request read), then nothing more while nothing changes.
    first = await next_frame(opening)
    if first["held"] != 2:
        assert (await next_frame(opening))["held"] == 2
    assert await watch_once(ticked_booking) == 0
    with pytest.raises(TimeoutError):
        await next_frame(opening, timeout=0.3)
    await opening.aclose()
    await opened.aclose()
    assert live.streams() == 0


async def test_the_first_stream_gets_a_change_made_after_its_request_read(ticked_booking):
    deps = BookingDeps.of(ticked_booking)
    live = deps.live
    event = event_created(capacity=10)
    await feed(ticked_booking, event)
    opening = (await stream_availability(deps, event.event_id)).body_iterator
    await reserved(ticked_booking, event, 3)
    # nothing watched the event yet: the stream starts with what its request read, then the
    # watcher's first read of the event (as it subscribes) brings the change
    assert (await next_frame(opening))["held"] == 0
    assert (await next_frame(opening, timeout=5))["held"] == 3
    await opening.aclose()
    assert live.streams() == 0


async def test_a_stream_holds_a_subscription_only_while_its_body_runs(ticked_booking):
    live = BookingDeps.of(ticked_booking).live
    event = event_created(capacity=10)
    await feed(ticked_booking, event)

    async def stream() -> AsyncIterator[Any]:
        return (
            await stream_availability(BookingDeps.of(ticked_booking), event.event_id)
        ).body_iterator

    never_started = await stream()  # answered, but the client left before the body started
    assert live.streams() == 0
    del never_started

    closed = await stream()  # the server closes it (a send failed)
    await next_frame(closed)
    assert live.streams(event.event_id) == 1
    await closed.aclose()
    assert live.streams() == 0

    cancelled = await stream()  # the server cancels it while it waits for a change (disconnect)
    await next_frame(cancelled)
    waiting = asyncio.ensure_future(next_frame(cancelled, timeout=60))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert live.streams() == 0 and live.watched() == []


async def test_a_client_gone_before_the_stream_starts_leaves_no_subscription(ticked_booking):
    live = BookingDeps.of(ticked_booking).live
    event = event_created(capacity=10)
    await feed(ticked_booking, event)
    path = f"/booking/events/{event.event_id}/availability/stream"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"accept", b"text/event-stream")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            raise OSError("the client has gone")  # what a server reports for a closed socket

    with contextlib.suppress(Exception):
        await ticked_booking.api(scope, receive, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"][:1] == [200]
    assert live.streams() == 0


# --- the fan-out, in memory -------------------------------------------------------------------


def snap(event_id: uuid.UUID, held: int) -> AvailabilitySnapshot:
    return AvailabilitySnapshot(event_id, 10, 10 - held, held, 0)


async def test_a_slow_stream_skips_to_the_latest_snapshot():
    live, event = LiveAvailability(), uuid.uuid4()
    slow = live.subscribe(event)
    slow.sent = snap(event, 0).version
    for held in (1, 2, 3):
        live.publish({event: snap(event, held)})
    assert await asyncio.wait_for(slow.next(), 1) == snap(event, 3)
    live.publish({event: snap(event, 3)})  # unchanged: nothing to send
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(slow.next(), 0.1)
    live.unsubscribe(slow)
    assert live.watched() == [] and live.latest(event) is None


async def test_streams_opening_at_once_share_one_read():
    live, event = LiveAvailability(), uuid.uuid4()
    reads = 0

    async def read() -> AvailabilitySnapshot:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)
        return snap(event, 1)

    got = await asyncio.gather(*(live.first(event, read) for _ in range(100)))
    assert reads == 1 and set(got) == {snap(event, 1)}
    await live.first(event, read)  # that read is over: the next opening reads again
    assert reads == 2
    live.subscribe(event)
    live.publish({event: snap(event, 2)})
    assert await live.first(event, read) == snap(event, 2) and reads == 2  # the watcher's


def test_version_follows_every_figure():
    e, t = uuid.uuid4(), uuid.uuid4()
    base = AvailabilitySnapshot(e, 10, 8, 2, 0, ((t, 8),))
    assert base.version == AvailabilitySnapshot(e, 10, 8, 2, 0, ((t, 8),)).version
    others = [
        AvailabilitySnapshot(e, 11, 8, 2, 0, ((t, 8),)),
        AvailabilitySnapshot(e, 10, 8, 1, 1, ((t, 8),)),
        AvailabilitySnapshot(e, 10, 8, 2, 0, ((t, 7),)),
        AvailabilitySnapshot(e, 10, 8, 2, 0, ((uuid.uuid4(), 8),)),
    ]
    assert len({base.version, *(o.version for o in others)}) == 5
    assert all(0 <= o.version < 2**53 for o in others)


# --- PostgreSQL and SQLite agree --------------------------------------------------------------


async def _story(db: Database, repository: type[BookingRepository], event: Any, types: Any) -> Any:
    async with UnitOfWork(db) as uow:
        await handlers.apply_event_snapshot(event, uow, repository=repository)
        await uow.commit()
    for ticket_type, quantity in ((types[0], 2), (types[2], 1)):
        async with UnitOfWork(db) as uow:
            await handlers.reserve_seats(
                uow,
                repository=repository,
                user=Principal(uuid.uuid4(), "customer", {}),
                event_id=event.event_id,
                lines=[(ticket_type.ticket_type_id, quantity)],
                hold_seconds=600,
                max_per_booking=10,
                max_held_per_user=20,
            )
            await uow.commit()
    async with db.read() as conn:
        return await read_availability(conn, [event.event_id, uuid.uuid4()])


async def test_postgresql_and_sqlite_give_the_same_availability(tmp_path: Path):
    event, types = types_event(capacity=5)
    async with postgres_database("booking", "live") as pg:
        on_pg = await _story(pg, BookingRepository, event, types)
    async with sqlite_database("booking", tmp_path) as lite:
        on_sqlite = await _story(lite, SqliteBookingRepository, event, types)
    assert list(on_pg) == [event.event_id]  # the unknown id is simply absent
    assert on_pg == on_sqlite
    got = on_pg[event.event_id]
    assert (got.available, got.held) == (2, 3)
    assert [a for _, a in got.ticket_types] == [1, 2, 1]
