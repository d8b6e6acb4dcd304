"""The whole platform as real processes: every service, the auth relay and the gateway, against
the real RabbitMQ and PostgreSQL, exporting traces to an in-test OTLP receiver and e-mail to an
in-test SMTP sink. Clients talk only to the gateway, as in production.

Started once per test session (it takes a few seconds) and stopped with SIGTERM at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from deploy.local.smtp_sink import MailSink, start_sink
from tests.conftest import DB_PREFIX, RABBIT_BASE, VHOST, _rabbitmqctl
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.processes import stop_processes
from tests.support.tcp_proxy import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "an-admin-Passw0rd-for-tests"

SERVICES = ("auth", "events", "booking", "payments", "notifications", "analytics")


@dataclass
class Platform:
    gateway: str
    ports: dict[str, int]
    otlp: OtlpReceiver
    mail: MailSink
    logs: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # A port on 127.0.0.1 webhooks may be sent to (WEBHOOK_ALLOWED_HOSTS): a test's receiver.
    webhook_port: int = 0

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def http_url(self, name: str) -> str:
        """Where a process answers HTTP: the gateway or a service."""
        return self.gateway if name == "gateway" else self.url(name)

    async def wait_ready(self, *names: str, timeout: float = 60) -> None:
        """Poll ``/ready`` (database and broker reachable) of ``names`` (default: all) until each
        answers 200; a process that exits, or the timeout, fails with the log tails."""
        pending = set(names or (*SERVICES, "gateway"))
        pending.discard("auth-relay")  # no HTTP; it is alive if its process is
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while pending:
                for name in sorted(pending):
                    proc = self.procs[name]
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}"
                        )
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(
                            f"{self.http_url(name)}/ready", timeout=aiohttp.ClientTimeout(total=3)
                        ) as r:
                            if r.status == 200:
                                pending.discard(name)
                if pending and time.monotonic() > deadline:
                    tails = "\n".join(f"--- {n}\n{self.log_tail(n)}" for n in pending)
                    raise RuntimeError(f"not ready after {timeout}s: {sorted(pending)}\n{tails}")
                await asyncio.sleep(0.2)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )


def _command(name: str, port: int) -> list[str]:
    py = sys.executable
    if name == "auth":
        return [py, "-m", "uvicorn", "auth.config.asgi:application", "--port", str(port)]
    if name == "auth-relay":
        return [py, "-m", "auth.relay"]
    if name == "gateway":
        return [py, "-m", "uvicorn", "gateway.main:app", "--port", str(port), "--no-proxy-headers"]
    return [py, "-m", "uvicorn", f"apps.{name}.main:app", "--port", str(port)]


@pytest.fixture(scope="session")
async def platform(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("platform")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp / "jwt.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    otlp = OtlpReceiver()
    await otlp.start()
    mail = MailSink()
    smtp_port = free_port()
    smtp = await start_sink(mail, port=smtp_port)

    ports = {name: free_port() for name in SERVICES}
    gateway_port = free_port()
    webhook_port = free_port()
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_JWKS",)}
    own_vhost = None
    if env["RABBITMQ_URL"] == f"{RABBIT_BASE}/{VHOST}":
        # Its own vhost: the platform's consumers must not compete with the in-process services
        # other tests start on the test vhost (they would steal each other's messages).
        own_vhost = f"{VHOST}_e2e"
        _rabbitmqctl("add_vhost", own_vhost)
        _rabbitmqctl("set_permissions", "-p", own_vhost, "guest", ".*", ".*", ".*")
        env["RABBITMQ_URL"] = f"{RABBIT_BASE}/{own_vhost}"
    env.update(
        DATABASE_PREFIX=f"{DB_PREFIX}e2e_",
        # Small pools: this platform and the fault harness's (same start-up) run side by side
        # with the in-process services under PostgreSQL's default 100 connections.
        DATABASE_POOL_SIZE="3",
        JWKS_URL=f"{urls['auth']}/auth/jwks.json",
        JWT_PRIVATE_KEY_FILE=str(key_file),
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_BSP_SCHEDULE_DELAY="100",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_port),
        DELIVERY_POLL_SECONDS="0.1",
        WEBHOOK_ALLOWED_HOSTS=f"127.0.0.1:{webhook_port}",
        WEBHOOK_POLL_SECONDS="0.1",
        GATEWAY_RATE_LIMIT="0",
        # The suites on this platform (e2e, reliability, abuse) register many users from one
        # address: registration limits off (their own tests are in tests/auth).
        REGISTRATIONS_PER_ADDRESS_PER_HOUR="0",
        REGISTRATIONS_PER_MINUTE="0",
        OUTBOX_POLL_SECONDS="0.5",
        LOG_FORMAT="text",
        **{f"{name.upper()}_URL": url for name, url in urls.items()},
    )
    logs = tmp / "logs"
    logs.mkdir()
    p = Platform(
        gateway=f"http://127.0.0.1:{gateway_port}",
        ports=ports,
        otlp=otlp,
        mail=mail,
        logs=logs,
        webhook_port=webhook_port,
    )
    # auth first: the others fetch its JWKS
    order = [
        "auth",
        "auth-relay",
        "events",
        "booking",
        "payments",
        "notifications",
        "analytics",
        "gateway",
    ]
    try:
        for name in order:
            port = gateway_port if name == "gateway" else ports.get(name, 0)
            log = open(logs / f"{name}.log", "w")  # noqa: SIM115
            p.procs[name] = subprocess.Popen(
                _command(name, port),
                cwd=ROOT,
                env={**env, "OTEL_SERVICE_NAME": name},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # a loaded machine (CI runners shared with other jobs) may need longer: E2E_READY_TIMEOUT
        await p.wait_ready(timeout=float(os.environ.get("E2E_READY_TIMEOUT", "90")))
        yield p
    finally:
        await stop_processes(p.procs.values())
        smtp.close()
        await otlp.stop()
        if own_vhost:
            with contextlib.suppress(Exception):
                _rabbitmqctl("delete_vhost", own_vhost)


class Client:
    """A thin JSON client for the gateway, as an API consumer would write it."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, token: str | None = None, **kw: Any):
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            body = await r.json(content_type=None) if r.content_length != 0 else None
            return r.status, body, r.headers

    async def user(self, role: str = "customer") -> tuple[str, str, str]:
        """Register and log in a new user; returns (user id, email, access token)."""
        email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        password = "correct horse battery staple 42"
        status, user = await self.call_while_busy(
            "POST",
            "/auth/register",
            json={"email": email, "password": password, "full_name": "Test User", "role": role},
        )
        assert status == 201, user
        status, tokens = await self.call_while_busy(
            "POST", "/auth/login", json={"email": email, "password": password}
        )
        assert status == 200, tokens
        return user["id"], email, tokens["access_token"]

    async def call_while_busy(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """As a polite client does: a 503 with Retry-After (auth hashes a few passwords at once
        per process and asks the rest to come back) is tried again, for up to a minute."""
        for _ in range(60):
            status, body, headers = await self.call(method, path, **kw)
            if status != 503:
                break
            await asyncio.sleep(float(headers.get("Retry-After", "1")))
        return status, body

    async def admin(self) -> str:
        status, tokens, _ = await self.call(
            "POST", "/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert status == 200, tokens
        return tokens["access_token"]


@pytest.fixture
async def api(platform: Platform):
    # Idle connections are dropped before the gateway's (uvicorn's) 5 s keep-alive closes them:
    # aiohttp keeps them 15 s, and on a loaded machine a request sent on one the server was
    # closing got "Server disconnected" (the consumer-kill fault test, registering customers).
    connector = aiohttp.TCPConnector(keepalive_timeout=3)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Client(session, platform.gateway)
