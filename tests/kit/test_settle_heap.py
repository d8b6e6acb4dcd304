"""The start-up heap frozen (``kit.runtime.settle_heap``): a service started the way uvicorn
starts it (its ASGI lifespan) has moved what start-up allocated out of the cyclic garbage
collector's sight. The gateway's is in ``tests/gateway/test_heap_frozen.py``.

That the frozen heap changes no behaviour is shown by every other test: each service started by
its lifespan runs with it (the e2e platform and the embedded mode included)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from uvicorn.lifespan.on import LifespanOn

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def lifespan_of(app: Any) -> AsyncIterator[None]:
    """Run ``app``'s ASGI start-up and shut-down as uvicorn's server does, without a socket."""
    config = uvicorn.Config(app, lifespan="on", log_level="warning")
    config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    assert not lifespan.should_exit, "start-up failed"
    try:
        yield
    finally:
        await lifespan.shutdown()


@pytest.fixture
def thawed() -> None:
    """Start from an unfrozen heap (the tests before may have started services in this
    process), so only the start-up under test can have frozen it."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0


def frozen(obj: Any) -> bool:
    """Whether the collector tracks ``obj`` but no longer looks at it (``gc.get_objects`` lists
    the collected generations, not the frozen one)."""
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


async def test_a_started_service_has_frozen_its_start_up_heap(thawed: None) -> None:
    from apps.events.bootstrap import build

    service = build()
    app = service.api
    assert not frozen(app)
    async with lifespan_of(app):
        assert gc.get_freeze_count() > 0
        assert frozen(app)  # what start-up made, the app among it
