"""``make run``: the real platform when RabbitMQ and PostgreSQL answer, else the embedded mode.

* Both reachable (``RABBITMQ_URL``, ``DATABASE_URL``; defaults 127.0.0.1:5672 and :5432): every
  service, relay and the gateway as separate processes under honcho (deploy/local/Procfile).
* Either unreachable, or ``EMBEDDED=1`` (``make run-embedded``), or a ``sqlite`` DATABASE_URL:
  the all-in-one embedded mode (deploy/local/embedded.py): one process, an in-memory broker,
  SQLite files — for trying the API, not durable.

The chosen program replaces this process (``exec``), so Ctrl-C reaches it directly.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/"


def reachable(url: str, default_port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=timeout
        ):
            return True
    except OSError:
        return False


def choose_mode(env: dict[str, str] | os._Environ[str]) -> tuple[str, str]:
    """("platform" | "embedded", why)."""
    if env.get("EMBEDDED", "").lower() in ("1", "true", "yes"):
        return "embedded", "EMBEDDED=1"
    rabbitmq = env.get("RABBITMQ_URL") or DEFAULT_RABBITMQ_URL
    database = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if database.startswith("sqlite"):
        return "embedded", "DATABASE_URL is SQLite"
    missing = [
        f"{name} at {urlsplit(url).hostname}:{urlsplit(url).port or port}"
        for name, url, port in (("RabbitMQ", rabbitmq, 5672), ("PostgreSQL", database, 5432))
        if not reachable(url, port)
    ]
    if missing:
        return "embedded", "no " + " and no ".join(missing) + " reachable"
    return "platform", "RabbitMQ and PostgreSQL are reachable"


def main() -> None:
    mode, why = choose_mode(os.environ)
    bin_dir = Path(sys.executable).parent
    if mode == "platform":
        print(f"make run: {why}; starting every service as its own process (honcho)", flush=True)
        honcho = str(bin_dir / "honcho")
        procfile = str(ROOT / "deploy" / "local" / "Procfile")
        os.execv(honcho, [honcho, "-f", procfile, "-d", str(ROOT), "start"])
    print(f"make run: {why}; starting the EMBEDDED all-in-one mode", flush=True)
    os.chdir(ROOT)
    os.execv(sys.executable, [sys.executable, "-m", "deploy.local.embedded"])


if __name__ == "__main__":
    main()
