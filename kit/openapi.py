"""The OpenAPI conventions every HTTP API of the platform follows, in one place.

Operation ids are made by one rule, so routes added later get a good one without anybody
thinking about it: ``<resource>_<action>``, where the resource is the service's (``bookings``,
``events``, ...) and the action is the route function's name without the resource's own word
(``create_booking`` -> ``bookings_create``, ``get_daily_report`` -> ``reports_get_daily``). A route
whose name reads badly that way says ``operation_id=`` itself, which wins. Generated clients turn
these ids into function names (``bookings_create.asyncio(...)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

OPERATION_ID = re.compile(r"^[a-z]+(_[a-z]+)+$")


def operation_id(resource: str, name: str) -> str:
    """``operation_id("bookings", "create_booking") == "bookings_create"``."""
    singular = resource[:-1] if resource.endswith("s") else resource
    words = [w for w in name.lower().split("_") if w]
    action = [w for w in words if w not in (resource, singular)] or words
    return "_".join([resource, *action])


def unique_id_function(resource: str) -> Callable[[Any], str]:
    """For ``FastAPI(generate_unique_id_function=...)``: the rule above, from the route
    function's name (an explicit ``operation_id=`` on the route is used as it is)."""

    def generate(route: Any) -> str:
        return operation_id(resource, route.name)

    return generate
