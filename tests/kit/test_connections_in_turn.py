"""Pooled connections are handed out in the order they were asked for (``Database.connect``),
on the real PostgreSQL.

The pool alone is not fair: a connection put back wakes the longest waiter, but a caller that
asks before that waiter has run (here: the one that just gave it back and asks again at once,
as a busy request handler does) takes it first, and the waiter queues again at the back. In a
flash sale some holds waited seconds that way while later ones went through."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from kit.db import Database
from kit.settings import ServiceSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def one_connection() -> AsyncIterator[Database]:
    db = Database(ServiceSettings(service_name="turns", database_pool_size=1), migrations=None)
    await db.prepare()
    yield db
    await db.dispose()


async def turns(connect: Callable[[], AbstractAsyncContextManager[Any]]) -> list[str]:
    """A busy caller takes the one connection 10 times in a row, asking again as soon as it has
    given it back; a second caller asks once, while the first holds it. Who got it when."""
    got: list[str] = []
    holding = asyncio.Event()

    async def busy() -> None:
        for _ in range(10):
            async with connect() as conn:
                got.append("busy")
                holding.set()
                await conn.execute(sa.text("SELECT pg_sleep(0.01)"))

    async def once() -> None:
        await holding.wait()
        async with connect() as conn:
            got.append("once")
            await conn.execute(sa.text("SELECT 1"))

    await asyncio.gather(busy(), once())
    return got


async def test_a_waiting_caller_gets_the_next_connection(one_connection: Database) -> None:
    got = await turns(one_connection.connect)
    assert got.count("busy") == 10 and got.count("once") == 1
    # asked while the busy caller held it for the first time: it comes next
    assert got.index("once") == 1


async def test_the_pool_alone_lets_the_busy_caller_go_first(one_connection: Database) -> None:
    """What the turns prevent (so the test above can fail): straight from the pool, closing the
    connection as a unit of work did before, the busy caller takes it back every time and the
    other waits for all ten."""

    @contextlib.asynccontextmanager
    async def from_the_pool() -> AsyncIterator[AsyncConnection]:
        conn = await one_connection.engine.connect()
        try:
            yield conn
        finally:
            await conn.close()

    got = await turns(from_the_pool)
    assert got.index("once") == 10


async def test_reads_and_units_of_work_take_their_turn(one_connection: Database) -> None:
    from kit.uow import UnitOfWork

    got: list[str] = []
    held = asyncio.Event()

    async def busy() -> None:
        for _ in range(5):
            async with UnitOfWork(one_connection) as uow:
                got.append("uow")
                held.set()
                await uow.conn.execute(sa.text("SELECT pg_sleep(0.01)"))
                await uow.commit()

    async def reader() -> None:
        await held.wait()
        async with one_connection.read() as conn:
            got.append("read")
            await conn.execute(sa.text("SELECT 1"))

    await asyncio.gather(busy(), reader())
    assert got.index("read") == 1
