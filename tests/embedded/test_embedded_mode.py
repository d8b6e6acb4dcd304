"""The embedded all-in-one mode, started the way `make run` starts it: the launcher
(deploy/local/run.py) finds no RabbitMQ (RABBITMQ_URL points at a closed port) and runs the whole
platform in one process with an in-memory broker and SQLite. A client then uses it through the
gateway exactly as the real platform: register, create an event, book, pay, confirmed, told,
counted. Finally Ctrl-C (SIGINT) stops it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from deploy.local.run import choose_mode
from tests.support.tcp_proxy import free_port
from tests.support.api_bodies import booking_body, event_body
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "events", "booking", "payments", "notifications", "analytics")
PASSWORD = "correct horse battery staple 42"


@dataclass
class Embedded:
    proc: subprocess.Popen
    gateway: str
    ports: dict[str, int]
    data_dir: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _closed_port() -> int:
    port = free_port()  # bound, then released: nothing listens there
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def _env(tmp: Path, ports: dict[str, int], rabbit_port: int) -> dict[str, str]:
    # Not the test run's settings (inline JWKS, vhost, database prefix): a fresh user's shell.
    drop = ("JWT_JWKS", "JWKS_URL", "DATABASE_PREFIX", "DATABASE_URL", "EMBEDDED", "ENVIRONMENT")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.endswith("_URL")}
    env.update(
        RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{rabbit_port}/",
        EMBEDDED_DATA_DIR=str(tmp / "embedded"),
        JWT_KEYS_DIR=str(tmp / "keys"),
        GATEWAY_RATE_LIMIT="0",
        OUTBOX_POLL_SECONDS="0.2",
        DELIVERY_POLL_SECONDS="0.1",
        PYTHONUNBUFFERED="1",
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
    )
    return env


@pytest.fixture(scope="module")
async def embedded(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("embedded")
    ports = {name: free_port() for name in (*SERVICES, "gateway", "smtp")}
    log = tmp / "output.log"
    with open(log, "w") as out:  # noqa: ASYNC230
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.local.run"],
            cwd=ROOT,
            env=_env(tmp, ports, _closed_port()),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    platform = Embedded(proc, f"http://127.0.0.1:{ports['gateway']}", ports, tmp / "embedded", log)
    try:
        deadline = time.monotonic() + 45
        while "Stop everything with Ctrl-C" not in platform.output():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"embedded mode did not come up:\n{platform.output()[-4000:]}")
            await asyncio.sleep(0.2)
        yield platform
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, token: str | None = None, **kw: Any):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            return r.status, await r.json(content_type=None)

    async def user(self, role: str) -> tuple[str, str]:
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        status, user = await self.call(
            "POST", "/auth/register", json={"email": email, "password": PASSWORD, "role": role}
        )
        assert status == 201, user
        status, tokens = await self.call(
            "POST", "/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert status == 200, tokens
        return user["id"], tokens["access_token"]

    async def event(
        self, organizer: str, title: str, *, capacity: int, price: str, venue: str = "Hall"
    ) -> dict[str, Any]:
        """An event in EUR, a month ahead, created by ``organizer``."""
        body = event_body(title=title, venue=venue, capacity=capacity, price=price)
        status, event = await self.call("POST", "/events/create", organizer, json=body)
        assert status == 201, event
        return event

    async def pay(self, customer: str, booking_id: str) -> dict[str, Any]:
        """The booking paid by card, once payments knows it."""
        status, payment = await self.until_known(
            "POST",
            "/payments/process",
            customer,
            json={
                "booking_id": booking_id,
                "payment_method": {"type": "card", "token": "tok_visa"},
            },
        )
        assert status in (200, 201), payment
        return payment

    async def until_known(self, method: str, path: str, token: str, **kw: Any):
        """Eventual consistency: a just-created id may be unknown elsewhere for a moment."""
        return await eventually(
            lambda: self.call(method, path, token, **kw), until=lambda r: r[0] != 404, timeout=10
        )


@pytest.fixture
async def api(embedded: Embedded) -> AsyncIterator[Client]:
    """A client of the embedded platform, through its gateway."""
    async with aiohttp.ClientSession() as session:
        yield Client(session, embedded.gateway)


def test_launcher_picks_embedded_when_the_broker_or_database_is_unreachable() -> None:
    closed = _closed_port()
    reachable_pg = "postgresql://postgres@127.0.0.1:5432/"
    reachable_mq = "amqp://guest:guest@127.0.0.1:5672/"

    mode, why = choose_mode(
        {"RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{closed}/", "DATABASE_URL": reachable_pg}
    )
    assert mode == "embedded" and f"RabbitMQ at 127.0.0.1:{closed}" in why
    mode, why = choose_mode(
        {"RABBITMQ_URL": reachable_mq, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed}/"}
    )
    assert mode == "embedded" and f"PostgreSQL at 127.0.0.1:{closed}" in why
    assert (
        choose_mode({"EMBEDDED": "1", "RABBITMQ_URL": reachable_mq, "DATABASE_URL": reachable_pg})[
            0
        ]
        == "embedded"
    )
    # both reachable (this machine runs them): the real multi-process platform
    assert choose_mode({"RABBITMQ_URL": reachable_mq, "DATABASE_URL": reachable_pg}) == (
        "platform",
        "RabbitMQ and PostgreSQL are reachable",
    )


async def test_start_up_says_what_it_is_and_that_it_is_not_durable(embedded: Embedded) -> None:
    out = embedded.output()
    assert "no RabbitMQ at 127.0.0.1:" in out and "starting the EMBEDDED all-in-one mode" in out
    assert "EMBEDDED MODE: one process, in-memory broker, SQLite files in" in out
    assert "NOT durable, for trying the API only" in out
    assert "start RabbitMQ and PostgreSQL for the real platform" in out
    for line in (
        f"Gateway (the only entry point) {embedded.gateway}",
        f"{embedded.gateway}/docs",
        f"{embedded.gateway}/asyncapi",
    ):
        assert line in out
    # one SQLite file per service, nothing on the (unreachable) servers
    files = {p.name for p in embedded.data_dir.glob("*.db")}
    assert {f"eb_{name}.db" for name in SERVICES} <= files


async def test_paid_booking_is_confirmed_told_and_counted(embedded: Embedded, api: Client) -> None:
    status, ready = await api.call("GET", "/ready")
    assert status == 200, ready
    for page in ("/docs", "/asyncapi", "/openapi.json"):  # the printed URLs answer
        async with api.session.get(embedded.gateway + page) as r:
            assert r.status == 200, page

    _, organizer = await api.user("organizer")
    customer_id, customer = await api.user("customer")
    event = await api.event(organizer, "Embedded gig", capacity=5, price="25.00")

    status, booking = await api.until_known(
        "POST", "/booking/create", customer, json={"event_id": event["id"], "quantity": 2}
    )
    assert status == 201, booking
    assert booking["status"] == "pending" and booking["amount"] == "50.00"

    payment = await api.pay(customer, booking["id"])
    assert payment["status"] == "succeeded" and payment["amount"] == "50.00"

    async def booking_now():
        return (await api.call("GET", f"/booking/{booking['id']}", customer))[1]

    confirmed = await eventually(booking_now, until=lambda b: b["status"] == "confirmed")
    assert confirmed["payment_id"] == payment["id"] and confirmed["user_id"] == customer_id

    async def kinds():
        _, body = await api.call("GET", "/notifications", customer)
        return [n["kind"] for n in body["items"]]

    told = await eventually(kinds, until=lambda k: "booking_confirmed" in k)
    assert "welcome" in told

    async def report():
        return (await api.call("GET", f"/analytics/report?event_id={event['id']}", organizer))[1]

    # booking's confirmation and payments' success are two facts, counted in either order
    counted = await eventually(
        report,
        until=lambda r: (r["totals"]["bookings_confirmed"], r["totals"]["payments_succeeded"])
        == (1, 1),
    )
    assert counted["totals"]["tickets_sold"] == 2
    assert counted["totals"]["revenue"] == {"EUR": "50.00"}

    # sold out while held, and somebody else's booking stays private, as on the real platform
    _, other = await api.user("customer")
    status, body = await api.call(
        "POST", "/booking/create", other, json={"event_id": event["id"], "quantity": 4}
    )
    assert status == 409, body
    assert (await api.call("GET", f"/booking/{booking['id']}", other))[0] == 404

    # concurrent holds on SQLite: never oversold, refusals are 409s, nothing fails
    small = await api.event(organizer, "Tiny gig", capacity=3, price="5.00", venue="Cellar")
    await eventually(
        lambda: api.call(
            "POST", "/booking/create", organizer, json={"event_id": small["id"], "quantity": 1}
        ),
        until=lambda r: r[0] == 201,
        timeout=10,
    )  # booking knows the event: 2 seats left
    answers = await asyncio.gather(
        *(
            api.call(
                "POST", "/booking/create", other, json={"event_id": small["id"], "quantity": 1}
            )
            for _ in range(6)
        )
    )
    assert sorted(status for status, _ in answers) == [201, 201, 409, 409, 409, 409], answers


async def test_tickets_and_check_in_work_on_sqlite(api: Client) -> None:
    _, organizer = await api.user("organizer")
    _, customer = await api.user("customer")
    event = await api.event(organizer, "Embedded doors", capacity=5, price="10.00")
    status, booking = await api.until_known(
        "POST", "/booking/create", customer, json=booking_body(event["id"], "Ada", "Bob")
    )
    assert status == 201, booking
    await api.pay(customer, booking["id"])

    async def tickets() -> Any:
        return (await api.call("GET", f"/booking/{booking['id']}/tickets", customer))[1]

    page = await eventually(tickets, until=lambda p: len(p["items"]) == 2)
    first, second = page["items"]
    assert (first["attendee_name"], second["attendee_name"]) == ("Ada", "Bob")

    # simultaneous scans of one ticket on SQLite: exactly one redeems
    scan = {"event_id": event["id"], "secret": first["secret"]}
    answers = await asyncio.gather(
        *(api.call("POST", "/booking/checkin", organizer, json=scan) for _ in range(8))
    )
    assert sorted(status for status, _ in answers) == [200] + [409] * 7, answers
    assert {b["type"].rsplit("/", 1)[1] for s, b in answers if s == 409} == {"already-redeemed"}
    status, counts = await api.call("GET", f"/booking/events/{event['id']}/checkins", organizer)
    assert status == 200 and (counts["tickets"], counts["redeemed"]) == (2, 1)

    # an offline scanner: the list, then an upload of an earlier scan of the other ticket
    async def listed() -> Any:
        return (await api.call("GET", f"/booking/events/{event['id']}/checkin-list", organizer))[1]

    full = await eventually(listed, until=lambda p: len(p["items"]) == 2)
    assert {(x["id"], x["status"]) for x in full["items"]} == {
        (first["id"], "redeemed"),
        (second["id"], "valid"),
    }
    earlier = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()
    status, uploaded = await api.call(
        "POST",
        f"/booking/events/{event['id']}/checkin/upload",
        organizer,
        json={"scans": [{"secret": second["secret"], "scanned_at": earlier}]},
    )
    assert status == 200 and uploaded["results"][0]["result"] == "redeemed", uploaded

    # a ticket was scanned in: the buyer can no longer cancel; the organizer's full refund
    # cancels the booking, and its tickets are void at once
    status, refused = await api.call("POST", f"/booking/{booking['id']}/cancel", customer)
    assert status == 409 and refused["type"].endswith("/booking-not-cancellable"), refused
    status, refunded = await api.call(
        "POST", f"/booking/{booking['id']}/refund", organizer, json={}
    )
    assert status == 200 and refunded["status"] == "cancelled", refunded
    page = await tickets()
    assert {t["status"] for t in page["items"]} == {"void"}


async def test_failed_logins_are_throttled_on_sqlite_too(embedded: Embedded, api: Client) -> None:
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    status, _ = await api.call(
        "POST", "/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert status == 201
    answers = []
    for _ in range(6):  # the account's budget is 5 failures per window
        async with api.session.post(
            embedded.gateway + "/auth/login",
            json={"email": email, "password": "not the password at all"},
        ) as r:
            answers.append((r.status, r.headers.get("Retry-After")))
    assert [s for s, _ in answers] == [401] * 5 + [429], answers
    assert 0 < int(answers[-1][1]) <= 15 * 60


async def test_ctrl_c_stops_everything(embedded: Embedded) -> None:
    embedded.proc.send_signal(signal.SIGINT)
    try:
        status = await asyncio.to_thread(embedded.proc.wait, 30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 30 s after Ctrl-C:\n{embedded.output()[-4000:]}")
    assert status == 0
    assert "embedded: stopped" in embedded.output()
    for port in (*embedded.ports.values(),):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
