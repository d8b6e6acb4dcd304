"""Webhook adapters: the endpoints' and deliveries' tables, the secrets' encryption, and the
HTTP sender that checks every address it connects to.

Where a webhook may go: http or https only, and every address its host resolves to must be a
public unicast one (``domain.address_allowed``) unless the host (or host:port) is listed in
WEBHOOK_ALLOWED_HOSTS. The check is made at registration and again at every delivery, on the
addresses resolved for that delivery, and the request goes to the address that was checked (the
host name only travels as ``Host`` and TLS server name): a DNS answer that changes in between
(DNS rebinding) cannot send it elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks.webhooks import Webhook

from apps.notifications.adapters.tables import (
    event_organizers,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoint_kinds,
    webhook_endpoints,
    webhook_waiting,
)
from kit.dialects import insert_for
from kit.pagination import newest_first
from apps.notifications.domain import UrlNotAllowed, address_allowed, webhook_id

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class SecretBox:
    """Encrypts endpoint secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256), so the database
    alone does not reveal them."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key)

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()


# --- where a webhook may go -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # without brackets
    port: int
    path: str  # path and query, at least "/"

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host_port if self.port != default else self.host_port.rsplit(":", 1)[0]


def parse_target(url: str) -> Target:
    """The URL's parts, or :class:`UrlNotAllowed` if it is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowed("The URL is not valid.", field="url") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlNotAllowed("Only http and https URLs are allowed.", field="url")
    if not parts.hostname:
        raise UrlNotAllowed("The URL has no host.", field="url")
    try:  # an internationalised name travels as its ASCII (IDNA) form
        host = parts.hostname.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise UrlNotAllowed("The URL's host name is not valid.", field="url") from exc
    if parts.username is not None or parts.password is not None:
        raise UrlNotAllowed("Credentials in the URL are not allowed.", field="url")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, host, port or default, path)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the operating system's resolver, 5 s at most)."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=5.0
    )
    return sorted({str(info[4][0]) for info in infos})


class TargetRefused(Exception):  # noqa: N818 - a refusal, reported as the attempt's error
    pass


class WebhookTargets:
    """Checks webhook targets (see the module docstring). ``resolve`` is replaceable (tests)."""

    def __init__(self, allowed_hosts: str, resolve: Resolver = system_resolve) -> None:
        self.allowed = frozenset(h.strip().lower() for h in allowed_hosts.split(",") if h.strip())
        self.resolve = resolve

    def _listed(self, target: Target) -> bool:
        host = target.host_port.rsplit(":", 1)[0]
        return host in self.allowed or target.host_port in self.allowed

    async def addresses(self, target: Target) -> list[IPAddress]:
        """The addresses to connect to, every one of them checked; :class:`TargetRefused` if
        the host does not resolve or any address is not allowed."""
        literal = _literal(target.host)
        if literal is not None:
            found = [literal]
        else:
            try:
                found = [
                    ipaddress.ip_address(a) for a in await self.resolve(target.host, target.port)
                ]
            except (OSError, TimeoutError, ValueError) as exc:
                raise TargetRefused(f"{target.host} does not resolve") from exc
            if not found:
                raise TargetRefused(f"{target.host} does not resolve")
        if not self._listed(target):
            refused = [a for a in found if not address_allowed(a)]
            if refused:
                raise TargetRefused(
                    f"{target.host} resolves to an address webhooks may not reach ({refused[0]})"
                )
        return sorted(found, key=lambda a: a.version)  # IPv4 first: reachable from more hosts

    async def check(self, url: str) -> Target:
        """Registration: the target, or :class:`UrlNotAllowed` (a 422)."""
        target = parse_target(url)
        try:
            await self.addresses(target)
        except TargetRefused as exc:
            raise UrlNotAllowed(
                f"Webhooks may not be sent there: {exc}. Only public addresses are allowed.",
                field="url",
            ) from exc
        return target


# --- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """Signs (Standard Webhooks) and POSTs one delivery, within ``timeout`` seconds in all."""

    def __init__(self, targets: WebhookTargets, *, timeout: float) -> None:
        self.targets = targets
        self.timeout = timeout
        # No redirects (they could lead anywhere), no proxies from the environment, no pooled
        # connections (a pool keyed by address could reuse one made for another host name).
        self.client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(
        self, *, url: str, secret: str, delivery_id: uuid.UUID, payload: str
    ) -> SendOutcome:
        started = time.monotonic()

        def done(status: int | None, error: str | None) -> SendOutcome:
            return SendOutcome(status, error, int((time.monotonic() - started) * 1000))

        try:
            target = parse_target(url)
            address = (await self.targets.addresses(target))[0]
        except (TargetRefused, UrlNotAllowed) as exc:
            return done(None, f"refused: {exc}")
        now = datetime.now(UTC)
        msg_id = webhook_id(delivery_id)
        headers = {
            "content-type": "application/json",
            "user-agent": "EventBooking-Webhooks/1.0",
            "host": target.host_header,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, payload),
        }
        host = f"[{address}]" if address.version == 6 else str(address)
        extensions: dict[str, Any] = {}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        request = self.client.build_request(
            "POST",
            f"{target.scheme}://{host}:{target.port}{target.path}",
            content=payload.encode(),
            headers=headers,
            extensions=extensions,
        )
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.send(request, stream=True)
                await response.aclose()  # the answer's body is not needed
        except TimeoutError:
            return done(None, f"timed out after {self.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - whatever fails is this attempt's error
            return done(None, f"{type(exc).__name__}: {exc}"[:500])
        return done(response.status_code, None if 200 <= response.status_code < 300 else "non-2xx")


# --- tables -------------------------------------------------------------------------------------

# The first key of the advisory lock on one owner's endpoints (kit.bindings' locks use 0x5EB0).
OWNER_LOCK_SPACE = 0x5EB1
_OWNER_LOCK = sa.text("SELECT pg_advisory_xact_lock(:space, :key)")


class WebhookRepository:
    """Endpoints, the event → organizer map, deliveries and attempts. Never commits."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add_endpoint(self, values: dict[str, Any], kinds: Iterable[str]) -> None:
        await self.conn.execute(webhook_endpoints.insert().values(**values))
        await self.conn.execute(
            webhook_endpoint_kinds.insert(),
            [{"kind": k, "endpoint_id": values["id"]} for k in kinds],
        )

    async def lock_owner(self, owner_id: uuid.UUID) -> None:
        """Serialise the changes to one owner's endpoints until this transaction ends (on
        PostgreSQL; SQLite has one writer at a time). Two owners may share a lock: they only
        wait for each other."""
        if self.conn.dialect.name == "postgresql":
            key = owner_id.int & 0xFFFFFFFF
            await self.conn.execute(
                _OWNER_LOCK,
                {"space": OWNER_LOCK_SPACE, "key": key - 2**32 if key >= 2**31 else key},
            )

    async def count_endpoints(self, owner_id: uuid.UUID) -> int:
        e = webhook_endpoints
        stmt = sa.select(sa.func.count()).select_from(e).where(e.c.owner_id == owner_id)
        return int((await self.conn.execute(stmt)).scalar_one())

    async def endpoint(self, endpoint_id: uuid.UUID, owner_id: uuid.UUID) -> sa.Row | None:
        stmt = sa.select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.owner_id == owner_id
        )
        return (await self.conn.execute(stmt)).first()

    async def endpoints_of(
        self, owner_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[sa.Row]:
        e = webhook_endpoints
        stmt = newest_first(e, e.c.owner_id == owner_id, limit=limit, before=before)
        return list((await self.conn.execute(stmt)).all())

    async def delete_endpoint(self, endpoint_id: uuid.UUID) -> None:
        d = webhook_deliveries
        deliveries = sa.select(d.c.id).where(d.c.endpoint_id == endpoint_id)
        await self.conn.execute(
            webhook_attempts.delete().where(webhook_attempts.c.delivery_id.in_(deliveries))
        )
        await self.conn.execute(d.delete().where(d.c.endpoint_id == endpoint_id))
        await self.conn.execute(
            webhook_endpoint_kinds.delete().where(
                webhook_endpoint_kinds.c.endpoint_id == endpoint_id
            )
        )
        await self.conn.execute(
            webhook_endpoints.delete().where(webhook_endpoints.c.id == endpoint_id)
        )

    @staticmethod
    async def subscribed(conn: AsyncConnection, kind: str) -> bool:
        """Whether any endpoint subscribes to ``kind`` (its queue must be bound: kit.bindings)."""
        k = webhook_endpoint_kinds
        return bool(await conn.scalar(sa.select(sa.exists().where(k.c.kind == kind))))

    async def organizer_of(self, event_id: uuid.UUID) -> uuid.UUID | None:
        stmt = sa.select(event_organizers.c.organizer_id).where(
            event_organizers.c.event_id == event_id
        )
        return (await self.conn.execute(stmt)).scalar()

    async def organizer_or_listening(
        self, kind: str, event_id: uuid.UUID
    ) -> tuple[uuid.UUID | None, bool]:
        """The event's organizer as ``event_organizers`` knows it, and whether any organizer's
        endpoint (not an admin's) subscribes to ``kind`` for all their events or this one: a
        message about an event whose organizer is unknown waits only if one might want it."""
        e, k = webhook_endpoints, webhook_endpoint_kinds
        known = (
            sa.select(event_organizers.c.organizer_id)
            .where(event_organizers.c.event_id == event_id)
            .scalar_subquery()
        )
        listening = sa.exists().where(
            k.c.kind == kind,
            k.c.endpoint_id == e.c.id,
            e.c.owner_is_admin.is_(False),
            sa.or_(e.c.event_id.is_(None), e.c.event_id == event_id),
        )
        row = (await self.conn.execute(sa.select(known, listening))).one()
        return row[0], bool(row[1])

    async def matching(
        self, kind: str, event_id: uuid.UUID | None, organizer_id: uuid.UUID | None
    ) -> list[uuid.UUID]:
        """The endpoints a ``kind`` message about ``event_id`` goes to: its organizer's (for all
        their events or this one) and admins' (for all events or this one)."""
        e, k = webhook_endpoints, webhook_endpoint_kinds
        owner = e.c.owner_is_admin
        if organizer_id is not None:
            owner = sa.or_(owner, e.c.owner_id == organizer_id)
        scope = e.c.event_id.is_(None)
        if event_id is not None:
            scope = sa.or_(scope, e.c.event_id == event_id)
        stmt = (
            sa.select(e.c.id)
            .join(k, k.c.endpoint_id == e.c.id)
            .where(k.c.kind == kind, owner, scope)
            .order_by(e.c.id)
        )
        return list((await self.conn.execute(stmt)).scalars())

    async def take_waiting(
        self, *, expire_before: datetime, limit: int
    ) -> tuple[list[sa.Row], list[sa.Row]]:
        """Up to ``limit`` waiting messages, locked for this transaction (other workers skip
        them): those whose event's organizer is known now, and those that waited since before
        ``expire_before`` for an organizer still unknown."""
        w, o = webhook_waiting, event_organizers
        stmt = (
            sa.select(w, o.c.organizer_id)
            .outerjoin(o, o.c.event_id == w.c.event_id)
            .where(sa.or_(o.c.organizer_id.is_not(None), w.c.created_at < expire_before))
            .order_by(w.c.created_at)
            .limit(limit)
            .with_for_update(of=w, skip_locked=True)
        )
        rows = (await self.conn.execute(stmt)).all()
        known = [r for r in rows if r.organizer_id is not None]
        return known, [r for r in rows if r.organizer_id is None]

    async def organizer_endpoints_of(
        self, message_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """For each waiting message: the endpoints of its event's organizer that match it (kind,
        event scope) and were registered by the time it was consumed. Admins' endpoints are
        left out: they matched it then."""
        if not message_ids:
            return {}
        w, o, e, k = webhook_waiting, event_organizers, webhook_endpoints, webhook_endpoint_kinds
        stmt = (
            sa.select(w.c.message_id, e.c.id)
            .join(o, o.c.event_id == w.c.event_id)
            .join(e, e.c.owner_id == o.c.organizer_id)
            .join(k, sa.and_(k.c.endpoint_id == e.c.id, k.c.kind == w.c.kind))
            .where(
                w.c.message_id.in_(message_ids),
                e.c.owner_is_admin.is_(False),
                sa.or_(e.c.event_id.is_(None), e.c.event_id == w.c.event_id),
                e.c.created_at <= w.c.created_at,
            )
            .order_by(w.c.message_id, e.c.id)
        )
        out: dict[uuid.UUID, list[uuid.UUID]] = {}
        for message_id, endpoint in (await self.conn.execute(stmt)).all():
            out.setdefault(message_id, []).append(endpoint)
        return out

    async def add_deliveries(self, rows: Sequence[dict[str, Any]]) -> None:
        """New delivery rows; one already there (same message and endpoint) is kept."""
        if rows:
            stmt = insert_for(self.conn, webhook_deliveries).on_conflict_do_nothing()
            await self.conn.execute(stmt, list(rows))

    async def forget_waiting(self, message_ids: Sequence[uuid.UUID]) -> None:
        if message_ids:
            w = webhook_waiting
            await self.conn.execute(w.delete().where(w.c.message_id.in_(message_ids)))

    async def delivery(self, delivery_id: uuid.UUID, endpoint_id: uuid.UUID) -> sa.Row | None:
        d = webhook_deliveries
        stmt = sa.select(d).where(d.c.id == delivery_id, d.c.endpoint_id == endpoint_id)
        return (await self.conn.execute(stmt)).first()

    async def deliveries_of(
        self, endpoint_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[sa.Row]:
        d = webhook_deliveries
        stmt = newest_first(d, d.c.endpoint_id == endpoint_id, limit=limit, before=before)
        return list((await self.conn.execute(stmt)).all())

    async def attempts_of(self, delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[sa.Row]]:
        out: dict[uuid.UUID, list[sa.Row]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return out
        a = webhook_attempts
        stmt = (
            sa.select(a).where(a.c.delivery_id.in_(delivery_ids)).order_by(a.c.attempted_at, a.c.id)
        )
        for row in (await self.conn.execute(stmt)).all():
            out[row.delivery_id].append(row)
        return out

    async def make_due(self, delivery_id: uuid.UUID, *, now: datetime) -> bool:
        """Manual retry: send it at once (one more attempt if it had given up). False, and
        nothing changed, while a worker has it in flight (its lease runs until its attempt is
        recorded, or until it lapses when the worker died)."""
        d = webhook_deliveries
        updated = await self.conn.execute(
            d.update()
            .where(
                d.c.id == delivery_id,
                sa.or_(d.c.leased_until.is_(None), d.c.leased_until <= now),
            )
            .values(
                status="pending",
                next_attempt_at=now,
                give_up_at=sa.case((d.c.give_up_at < now, now), else_=d.c.give_up_at),
                updated_at=now,
            )
        )
        return bool(updated.rowcount)

    async def claim_due(
        self,
        *,
        now: datetime,
        lease_until: datetime,
        limit: int,
        per_endpoint: int,
        in_flight: Mapping[uuid.UUID, int],
    ) -> list[sa.Row]:
        """Up to ``limit`` due deliveries, leased until ``lease_until``: their
        ``next_attempt_at`` moves there, so no other worker takes them while they are sent, and
        a worker that dies mid-send leaves them due again then (at least once); their
        ``leased_until`` says so until the attempt is recorded (a retry by hand waits). No endpoint gets
        more than ``per_endpoint`` in flight, counting the ``in_flight`` ones already sent: one
        slow endpoint cannot take every slot, and a backlog of one never starves the others
        (the candidates are ranked per endpoint). On PostgreSQL the rows are claimed ``FOR
        UPDATE SKIP LOCKED`` (replicas share the work); SQLite has one writer at a time."""
        d, e = webhook_deliveries, webhook_endpoints
        due = sa.and_(d.c.status == "pending", d.c.next_attempt_at <= now)
        full = [endpoint for endpoint, n in in_flight.items() if n >= per_endpoint]
        ranked = (
            sa.select(
                d.c.id,
                sa.func.row_number()
                .over(partition_by=d.c.endpoint_id, order_by=(d.c.next_attempt_at, d.c.id))
                .label("rank"),
            )
            .where(due, *([d.c.endpoint_id.not_in(full)] if full else []))
            .subquery()
        )
        candidates = sa.select(ranked.c.id).where(ranked.c.rank <= per_endpoint)
        stmt = (
            sa.select(d.c.id, d.c.endpoint_id)
            .where(due, d.c.id.in_(candidates))
            .order_by(d.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        taken: dict[uuid.UUID, int] = {}
        ids = []
        for row in (await self.conn.execute(stmt)).all():
            n = in_flight.get(row.endpoint_id, 0) + taken.get(row.endpoint_id, 0)
            if n < per_endpoint:  # the others stay due, unleased
                taken[row.endpoint_id] = taken.get(row.endpoint_id, 0) + 1
                ids.append(row.id)
        if not ids:
            return []
        await self.conn.execute(
            d.update()
            .where(d.c.id.in_(ids))
            .values(next_attempt_at=lease_until, leased_until=lease_until)
        )
        rows = sa.select(d, e.c.url, e.c.secret_encrypted).join(e, e.c.id == d.c.endpoint_id)
        return list((await self.conn.execute(rows.where(d.c.id.in_(ids)))).all())

    async def record(
        self,
        delivery: sa.Row,
        outcome: SendOutcome,
        *,
        now: datetime,
        next_attempt_at: datetime | None,
    ) -> None:
        """The attempt in the log and its effect on the delivery."""
        d = webhook_deliveries
        if outcome.ok:
            values: dict[str, Any] = dict(status="delivered", delivered_at=now, next_attempt_at=now)
        elif next_attempt_at is None:
            values = dict(status="failed", next_attempt_at=now)
        else:
            values = dict(status="pending", next_attempt_at=next_attempt_at)
        updated = await self.conn.execute(
            d.update()
            .where(d.c.id == delivery.id)
            .values(
                attempts=d.c.attempts + 1,
                last_status_code=outcome.status_code,
                last_error=outcome.error,
                updated_at=now,
                leased_until=None,
                **values,
            )
        )
        if updated.rowcount == 0:
            return  # the endpoint was deleted meanwhile: nothing to log
        await self.conn.execute(
            webhook_attempts.insert().values(
                id=uuid.uuid4(),
                delivery_id=delivery.id,
                attempted_at=now,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                next_attempt_at=None if outcome.ok else next_attempt_at,
            )
        )
