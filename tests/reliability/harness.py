"""The whole platform as real processes (tests/e2e/conftest.py's ``platform``), started on its own
RabbitMQ vhost and its own databases, with what fault tests need on top: kill -9 one process and
start it again with the very command and environment it had, a raw broker channel on the
platform's vhost, direct SQL on each service's database, and tokens signed with the platform's
key (for the bad-token and authorization tests).

One instance serves every test under tests/reliability and tests/abuse (it is shared through a
module-level reference count, since each directory's conftest declares the fixture), so a run
pays its start-up once. It is never the e2e tests' instance: those keep theirs untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization

import tests.e2e.conftest as e2e
from tests.conftest import DB_PREFIX, RABBIT_BASE, SERVER_URL, VHOST, _rabbitmqctl
from tests.e2e.conftest import ROOT, Platform
from tests.support.tokens import mint

SERVICES = e2e.SERVICES
# The e2e fixture's body, driven by hand so it can be started on another vhost and prefix.
_START_PLATFORM = e2e.platform._get_wrapped_function()


def _proc_file(pid: int, name: str) -> list[str]:
    raw = Path(f"/proc/{pid}/{name}").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


@dataclass
class Harness:
    platform: Platform
    rabbitmq_url: str
    db_prefix: str
    _launch: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    kills: int = 0

    def __post_init__(self) -> None:
        # Each process's command line and environment, to start it again exactly as it was.
        for name, proc in self.platform.procs.items():
            cmd = _proc_file(proc.pid, "cmdline")
            env = dict(
                item.split("=", 1) for item in _proc_file(proc.pid, "environ") if "=" in item
            )
            self._launch[name] = (cmd, env)

    # --- processes ----------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, unacked messages go back to their queues."""
        proc = self.platform.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.kills += 1

    def freeze(self, name: str) -> None:
        """SIGSTOP: the process halts wherever it is (mid-handler, mid-transaction); the broker
        keeps delivering up to its prefetch, unacked. A SIGKILL then loses all of it in flight."""
        self.platform.procs[name].send_signal(signal.SIGSTOP)

    def spawn(self, name: str) -> None:
        cmd, env = self._launch[name]
        log = open(self.platform.logs / f"{name}.log", "a")  # noqa: SIM115 - owned by the process
        self.platform.procs[name] = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    async def restart(self, name: str, *, ready: bool = True) -> None:
        await asyncio.to_thread(self.kill, name)
        self.spawn(name)
        if ready:
            await self.wait_ready(name)

    def url(self, name: str) -> str:
        return self.platform.http_url(name)

    async def wait_ready(self, *names: str, timeout: float = 60) -> None:
        await self.platform.wait_ready(*names, timeout=timeout)

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.platform.procs.items()}

    # --- data -----------------------------------------------------------------------------------

    def database(self, service: str) -> str:
        return f"{self.db_prefix}{service}"

    async def sql(self, service: str, query: str, *args: Any) -> list[asyncpg.Record]:
        """Read a service's own database directly (as an auditor would, not as a client)."""
        url = SERVER_URL.rstrip("/")
        conn = await asyncpg.connect(f"{url}/{self.database(service)}")
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    def queue_depths(self) -> dict[str, int]:
        """Messages in every queue of the platform's vhost (ready + unacked), by name."""
        vhost = self.rabbitmq_url.rsplit("/", 1)[1]
        out = subprocess.run(
            [
                "rabbitmqctl",
                "-q",
                "list_queues",
                "-p",
                vhost,
                "name",
                "messages",
                "--formatter",
                "json",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        return {q["name"]: int(q["messages"]) for q in json.loads(out)}

    async def outbox_backlog(self) -> dict[str, int]:
        """Rows still waiting in each publishing service's outbox."""
        backlog = {}
        for service in ("auth", "events", "booking", "payments", "notifications"):
            with contextlib.suppress(asyncpg.UndefinedTableError):
                backlog[service] = (await self.sql(service, "SELECT count(*) AS n FROM outbox"))[0][
                    "n"
                ]
        return backlog

    # --- tokens ---------------------------------------------------------------------------------

    def signing_key(self) -> Any:
        _, env = self._launch["auth"]
        pem = Path(env["JWT_PRIVATE_KEY_FILE"]).read_bytes()
        return serialization.load_pem_private_key(pem, password=None)

    async def kid(self) -> str:
        url = f"{self.platform.url('auth')}/auth/jwks.json"
        async with aiohttp.ClientSession() as session, session.get(url) as r:
            return (await r.json())["keys"][0]["kid"]

    async def token(
        self, user_id: uuid.UUID | str | None = None, role: str = "customer", **kw: Any
    ) -> str:
        """A token signed with the platform's real key (``kw`` as in tests.support.tokens.mint)."""
        kw.setdefault("kid", await self.kid())
        kw.setdefault("key", self.signing_key())
        return mint(user_id, role, **kw)


@contextlib.asynccontextmanager
async def running_platform(
    tmp_path_factory: pytest.TempPathFactory, tag: str
) -> AsyncIterator[Harness]:
    """Start the e2e platform on vhost ``<test vhost>_<tag>`` and databases ``<prefix><tag>_e2e_*``."""
    vhost = f"{VHOST}_{tag}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    rabbitmq_url = f"{RABBIT_BASE}/{vhost}"
    saved_url, saved_prefix = os.environ["RABBITMQ_URL"], e2e.DB_PREFIX
    os.environ["RABBITMQ_URL"], e2e.DB_PREFIX = rabbitmq_url, f"{DB_PREFIX}{tag}_"
    gen = _START_PLATFORM(tmp_path_factory)
    try:
        try:
            platform = await gen.__anext__()  # the fixture reads both while it builds the env
        finally:
            os.environ["RABBITMQ_URL"], e2e.DB_PREFIX = saved_url, saved_prefix
        harness = Harness(platform, rabbitmq_url, f"{DB_PREFIX}{tag}_e2e_")
        try:
            yield harness
        finally:
            with contextlib.suppress(StopAsyncIteration):
                await gen.__anext__()  # the fixture's own teardown (SIGTERM, wait, kill)
    finally:
        with contextlib.suppress(Exception):
            _rabbitmqctl("delete_vhost", vhost)


_shared: dict[str, Any] = {"users": 0, "harness": None, "cm": None}


@pytest.fixture(scope="session")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    if _shared["harness"] is None:
        cm = running_platform(tmp_path_factory, "faults")
        _shared["harness"], _shared["cm"] = await cm.__aenter__(), cm
    _shared["users"] += 1
    try:
        yield _shared["harness"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            cm, _shared["cm"], _shared["harness"] = _shared["cm"], None, None
            await cm.__aexit__(None, None, None)


@pytest.fixture(scope="session")
def platform(harness: Harness) -> Platform:
    return harness.platform
