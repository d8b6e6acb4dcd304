"""The routing table: which path prefix goes to which service, and which routes are public.

Paths are forwarded unchanged (every service serves its own prefix). A prefix marked ``bare``
also answers the prefix itself (``/events``, ``/booking``, ``/notifications``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Upstream:
    name: str
    prefix: str
    url: str
    bare: bool = False

    def serves(self, path: str) -> bool:
        """Whether ``path`` (decoded) belongs to this service."""
        p = self.prefix
        return path.startswith(p + "/") or (self.bare and path == p)


# (service, prefix, whether the bare prefix is a route too), exactly as the seed names them.
ROUTES: tuple[tuple[str, str, bool], ...] = (
    ("auth", "/auth", False),
    ("events", "/events", True),
    ("booking", "/booking", True),
    ("payments", "/payments", True),  # GET /payments: the caller's payments
    ("notifications", "/notifications", True),
    ("analytics", "/analytics", False),
)


def routing_table(urls: dict[str, str]) -> list[Upstream]:
    return [Upstream(name, prefix, urls[name].rstrip("/"), bare) for name, prefix, bare in ROUTES]


_PUBLIC_AUTH = {
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),  # holds a refresh token, not an access token
    ("GET", "/auth/jwks.json"),
    ("HEAD", "/auth/jwks.json"),
}


# What follows ``/booking/events/{one segment}`` on the public availability routes.
_PUBLIC_AVAILABILITY = (["availability"], ["availability", "stream"])


def is_event_stream(method: str, path: str) -> bool:
    """The routes that answer a Server-Sent Events stream (an event's availability stream),
    whatever the request's ``Accept`` says: they go over the stream session, never taking a
    connection that ordinary requests need."""
    return method == "GET" and _after_booking_event(path) == ["availability", "stream"]


def _after_booking_event(path: str) -> list[str] | None:
    """The segments after ``/booking/events/{one non-empty segment}``; None for other paths."""
    if not path.startswith("/booking/events/"):
        return None
    event, *rest = path[len("/booking/events/") :].split("/")
    return rest if event else None


def is_public(method: str, path: str) -> bool:
    """Routes that need no access token: register, login, refresh, the JWKS, reading events,
    an event's availability (``/booking/events/{id}/availability`` and its ``/stream``).

    Reading events means exactly ``/events`` and ``/events/{one segment}``: anything deeper
    under ``/events`` needs a token, whatever the service behind it would do with it.
    """
    if (method, path) in _PUBLIC_AUTH:
        return True
    if method in ("GET", "HEAD") and path.startswith("/booking/events/"):
        return _after_booking_event(path) in _PUBLIC_AVAILABILITY
    if method in ("GET", "HEAD") and (path == "/events" or path == "/events/"):
        return True
    if method in ("GET", "HEAD") and path.startswith("/events/"):
        rest = path[len("/events/") :]
        return bool(rest) and "/" not in rest
    return False


def has_dot_segment(path: str) -> bool:
    """``.`` or ``..`` as a path segment: refused rather than resolved differently than the
    service would."""
    return any(seg in (".", "..") for seg in path.split("/"))
