"""The gateway's start-up heap frozen (``kit.runtime.settle_heap`` in its lifespan): the gateway
started the way uvicorn starts it has moved what start-up allocated out of the cyclic garbage
collector's sight. (The services': ``tests/kit/test_settle_heap.py``; that it changes no
behaviour is shown by every other gateway test, each of which runs with it.)"""

from __future__ import annotations

import gc

from gateway.app import create_app
from gateway.config import GatewaySettings
from tests.kit.test_settle_heap import frozen, lifespan_of


async def test_a_started_gateway_has_frozen_its_start_up_heap() -> None:
    gc.unfreeze()  # the tests before may have started services or gateways in this process
    app = create_app(GatewaySettings())
    assert gc.get_freeze_count() == 0 and not frozen(app)
    async with lifespan_of(app):
        assert gc.get_freeze_count() > 0
        assert frozen(app)  # what start-up made, the app among it
