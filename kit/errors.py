"""Domain errors: a rule of a service's model was broken, in terms a client can act on.

Each service's errors subclass :class:`DomainError` and say, as class attributes, which answer
they are: the HTTP ``status``, the problem ``code`` (the last segment of the problem ``type``,
e.g. ``not-enough-seats``), optionally a ``title``, and where the offending input sits. The kit's
app factory installs one handler (``kit.problems``) that renders any of them as RFC 9457 problem
details, so routes let them propagate instead of translating each one. Nothing here knows HTTP
frameworks: domain modules stay free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    """Raise a subclass with a ``detail`` for the client; keyword arguments other than
    ``field`` become extra members of the problem (e.g. ``available=3``)."""

    status: int = 422
    code: str = "validation-error"
    # None: the status's standard title ("Conflict", "Not Found"...).
    title: str | None = None
    # Where ``field`` is in the request ("body", "query"): the problem's ``errors`` list then
    # names it, with ``error_type`` as its type. None: the field stays internal.
    field_in: str | None = None
    error_type: str = "value_error"
    headers: Mapping[str, str] = {}

    def __init__(self, detail: str = "", *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra
        self.errors: list[dict[str, Any]] | None = (
            [{"field": f"{self.field_in}.{field}", "message": detail, "type": self.error_type}]
            if self.field_in and field
            else None
        )
