"""Start the whole platform as separate processes for a benchmark, and take it down again.

Each run uses its own RabbitMQ vhost and database prefix (dropped afterwards), its own JWT
signing key (so the load generator can mint tokens the platform accepts without paying for
thousands of Argon2 logins), the gateway's rate limit off, and no access logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aio_pika
import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.processes import stop_processes

if TYPE_CHECKING:
    from contracts.envelope import Envelope


def relay_message(m: Envelope) -> aio_pika.Message:
    """``m`` as the outbox relay publishes it: persistent, with its id, type and schema version."""
    return aio_pika.Message(
        m.model_dump_json().encode(),
        content_type="application/json",
        message_id=str(m.message_id),
        correlation_id=str(m.correlation_id),
        type=m.message_type,  # type: ignore[attr-defined]
        headers={"schema_version": m.schema_version},
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("auth", "events", "booking", "payments", "notifications", "analytics")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of one process so far (``OSError`` if it is gone)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class BenchPlatform:
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    extra_env: dict[str, str] = field(default_factory=dict)
    gateway_workers: int = 1
    booking_workers: int = 1
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def vhost(self) -> str:
        return f"bench_{self.run}"

    @property
    def db_prefix(self) -> str:
        return f"bench_{self.run}_"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    async def start(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.vhost], check=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"],
            check=True,
        )
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = Path(f"/tmp/{self.vhost}.pem")
        key_file.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.ports = {name: free_port() for name in (*SERVICES, "gateway")}
        # A real SMTP server (the development sink) takes the e-mails, so a paid booking's cost
        # includes its confirmation's QR codes; its own CPU is counted as "mail server".
        self.smtp_port = free_port()
        self.mail_server = subprocess.Popen(
            [sys.executable, "-m", "deploy.local.smtp_sink", "--port", str(self.smtp_port)]
            + ["--dir", f"/tmp/{self.vhost}-mail"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        env = {k: v for k, v in os.environ.items() if k != "JWT_JWKS"}
        env.update(
            RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}",
            DATABASE_PREFIX=self.db_prefix,
            JWKS_URL=f"{self.url('auth')}/auth/jwks.json",
            JWT_PRIVATE_KEY_FILE=str(key_file),
            GATEWAY_RATE_LIMIT="0",
            REGISTRATIONS_PER_ADDRESS_PER_HOUR="0",  # benches register many users from one address
            REGISTRATIONS_PER_MINUTE="0",
            LOG_LEVEL="WARNING",
            ENVIRONMENT="test",
            SMTP_PORT=str(self.smtp_port),
            **{f"{s.upper()}_URL": self.url(s) for s in SERVICES},
            **self.extra_env,
        )
        py = sys.executable
        commands = {
            "auth": [py, "-m", "uvicorn", "auth.config.asgi:application"],
            "auth-relay": [py, "-m", "auth.relay"],
            **{s: [py, "-m", "uvicorn", f"apps.{s}.main:app"] for s in SERVICES[1:]},
            "gateway": [
                py,
                "-m",
                "uvicorn",
                "gateway.main:app",
                "--no-proxy-headers",
                "--workers",
                str(self.gateway_workers),
            ],
        }
        if self.booking_workers > 1:
            commands["booking"] += ["--workers", str(self.booking_workers)]
        for name, cmd in commands.items():
            if name != "auth-relay":
                cmd += [
                    "--port",
                    str(self.ports[name]),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ]
            self.procs[name] = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(f"/tmp/{self.vhost}-{name}.log", "w"),  # noqa: SIM115
            )
        await self._wait_ready()
        async with aiohttp.ClientSession() as s, s.get(f"{self.url('auth')}/auth/jwks.json") as r:
            self.kid = (await r.json())["keys"][0]["kid"]

    async def _wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        pending = {name for name in self.ports}
        async with aiohttp.ClientSession() as session:
            while pending:
                for name in list(pending):
                    if self.procs[name].poll() is not None:
                        raise RuntimeError(f"{name} died, see /tmp/{self.vhost}-{name}.log")
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        url = self.gateway if name == "gateway" else self.url(name)
                        async with session.get(f"{url}/ready") as r:
                            if r.status == 200:
                                pending.discard(name)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not ready: {pending}")
                await asyncio.sleep(0.3)

    def token(self, user_id: uuid.UUID, role: str = "customer", ttl: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "role": role,
            "token_type": "access",
            "iss": "eventbooking-auth",
            "aud": "eventbooking",
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    async def announce_users(self, users: list[uuid.UUID]) -> None:
        """Publish ``user_registered`` for ``users`` on the domain exchange, as auth's relay
        does after a registration (persistent, with the message's id and type)."""
        from contracts.messages import UserRegistered
        from contracts.topology import DOMAIN_EXCHANGE

        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}")
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(DOMAIN_EXCHANGE.name)
            for user in users:
                m = UserRegistered(
                    producer="auth",
                    user_id=user,
                    email=f"fan-{user.hex[:12]}@example.com",
                    full_name="Bench Fan",
                    role="customer",
                )
                await exchange.publish(relay_message(m), routing_key=m.routing_key)

    async def drain(self, timeout: float = 300) -> float:
        """Wait until every queue (dead-letter queues aside) and every outbox is empty; returns
        how long that took."""
        import asyncpg

        start = time.monotonic()
        while time.monotonic() - start < timeout:
            out = subprocess.run(
                ["rabbitmqctl", "-q", "list_queues", "-p", self.vhost, "name", "messages"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split("\n")
            waiting = sum(
                int(n)
                for line in out
                if len(f := line.split()) == 2 and f[1].isdigit() and not f[0].endswith(".dlq")
                for n in [f[1]]
            )
            for service in SERVICES:
                conn = await asyncpg.connect(
                    f"postgresql://postgres@127.0.0.1:5432/{self.db_prefix}{service}"
                )
                try:
                    waiting += await conn.fetchval("SELECT count(*) FROM outbox")
                finally:
                    await conn.close()
            if waiting == 0:
                break
            await asyncio.sleep(0.5)
        return time.monotonic() - start

    def pids(self) -> list[int]:
        """Every process of the platform (uvicorn workers included)."""
        roots = [p.pid for p in self.procs.values() if p.poll() is None]
        out = list(roots)
        for pid in roots:
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                out += [int(c) for c in children]
        return out

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def infrastructure_cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by PostgreSQL's processes, RabbitMQ's VM (both shared by everything
        on the machine, not only this run's platform), the mail server and this load generator."""
        out = {"postgres": 0.0, "rabbitmq": 0.0, "mail server": 0.0}
        with contextlib.suppress(OSError):
            out["mail server"] = _cpu_seconds_of(self.mail_server.pid)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                comm = (entry / "comm").read_text().strip()
                name = (
                    "postgres"
                    if comm == "postgres" or comm.startswith("postgres:")
                    else "rabbitmq"
                    if comm.startswith("beam")
                    else None
                )
                if name:
                    out[name] += _cpu_seconds_of(int(entry.name))
        mine = os.times()
        out["load generator"] = mine.user + mine.system
        return out

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by each process of the platform, its uvicorn workers included."""
        out = {}
        for name, proc in self.procs.items():
            pids = [proc.pid]
            with contextlib.suppress(OSError):
                pids += [
                    int(c)
                    for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                ]
            total = 0.0
            for pid in pids:
                with contextlib.suppress(OSError):
                    total += _cpu_seconds_of(pid)
            out[name] = total
        return out

    async def stop(self) -> None:
        await stop_processes([*self.procs.values(), self.mail_server])
        shutil.rmtree(f"/tmp/{self.vhost}-mail", ignore_errors=True)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], check=False)
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            for (name,) in c.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (self.db_prefix + "%",)
            ).fetchall():
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
