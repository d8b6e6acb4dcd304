"""Event streams through the real gateway: passed through as they come (not buffered), public
for an event's availability, not cut by the read timeout while idle, closed upstream when the
client leaves, and never holding the connections ordinary requests need."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from tests.gateway.conftest import gateway_stack, serve

STREAM = "/booking/events/3b9e2a51-5c1a-4f3e-9d55-0d6c1ad1c001/availability/stream"


@dataclass
class Streamer:
    """A booking stand-in: on ``.../stream``, one event at once, another after ``gap`` seconds
    of silence, then nothing until the client leaves (recorded); anything else: 200 JSON."""

    gap: float = 0.0
    open: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    went_on: list[float] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if not scope["path"].endswith("/stream"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
                }
            )
            await send({"type": "http.response.body", "body": b"{}"})
            return
        self.open += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        if self.gap:
            await asyncio.sleep(self.gap)
            await send({"type": "http.response.body", "body": b"data: two\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        self.open -= 1
        self.closed.set()


async def data_line(resp: aiohttp.ClientResponse, timeout: float) -> str:
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), timeout)).decode().strip()
        if line.startswith("data:"):
            return line[5:].strip()


async def test_a_public_stream_passes_event_by_event_and_outlives_the_read_timeout(echoes):
    streamer = Streamer(gap=1.5)
    async with (
        serve(streamer, lifespan="off") as booking_url,
        gateway_stack(echoes, urls={"booking": booking_url}, upstream_timeout_seconds=0.5) as s,
        aiohttp.ClientSession() as http,
    ):
        # no token: an event's availability is public
        async with http.get(s.gateway + STREAM) as resp:
            assert resp.status == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert await data_line(resp, timeout=2) == "one"  # the upstream has not finished
            started = time.perf_counter()
            # three times the gateway's read timeout of silence, and the stream goes on
            assert await data_line(resp, timeout=5) == "two"
            assert time.perf_counter() - started > 1.0


async def test_a_client_that_leaves_closes_the_upstream_stream(echoes):
    streamer = Streamer()
    async with (
        serve(streamer, lifespan="off") as booking_url,
        gateway_stack(echoes, urls={"booking": booking_url}) as s,
        aiohttp.ClientSession() as http,
    ):
        resp = await http.get(s.gateway + STREAM, headers={"Accept": "text/event-stream"})
        assert await data_line(resp, timeout=2) == "one"
        assert streamer.open == 1
        resp.close()  # the client goes away
        await asyncio.wait_for(streamer.closed.wait(), 3)
        assert streamer.open == 0


@pytest.mark.parametrize(
    "accept", [{"Accept": "text/event-stream"}, {}, {"Accept": "*/*"}], ids=["sse", "none", "any"]
)
async def test_open_streams_do_not_take_the_connections_of_ordinary_requests(echoes, accept):
    # whatever the client says it accepts (curl sends */*), a stream route is a stream
    streamer = Streamer()
    async with (
        serve(streamer, lifespan="off") as booking_url,
        gateway_stack(
            echoes,
            urls={"booking": booking_url},
            upstream_max_connections=2,
            upstream_timeout_seconds=1.0,
        ) as s,
        aiohttp.ClientSession() as http,
    ):
        opened = []
        try:
            for _ in range(5):  # (without their own session the third would wait for ever)
                opened.append(
                    await asyncio.wait_for(http.get(s.gateway + STREAM, headers=accept), 5)
                )
            for resp in opened:
                assert await data_line(resp, timeout=2) == "one"
            assert streamer.open == 5
            # with 2 upstream connections for ordinary requests, they still get through
            for _ in range(3):
                async with http.get(
                    s.gateway + "/booking/events/3b9e2a51-5c1a-4f3e-9d55-0d6c1ad1c001/availability"
                ) as plain:
                    assert plain.status == 200
        finally:
            for resp in opened:
                resp.close()
