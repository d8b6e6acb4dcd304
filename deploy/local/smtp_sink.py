"""A local SMTP sink for development and tests: accepts every message, keeps it, sends nothing.

Run it: ``python -m deploy.local.smtp_sink --port 1025 [--host 127.0.0.1] [--dir .var/mail]``.
Each received message is written to ``<dir>/<time>-<n>.eml`` and logged (recipients, subject),
so the e-mails the platform sends in a local run can be read. Tests embed it in their own event
loop with :func:`start_sink` and read :attr:`MailSink.messages`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("smtp_sink")


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


class MailSink:
    """aiosmtpd handler that keeps every message (in memory, and as .eml files if given a dir)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.messages: list[ReceivedMail] = []
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        message = message_from_bytes(raw, policy=policy.default)
        mail = ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
        self.messages.append(mail)
        if self.directory is not None:
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{len(self.messages):05d}.eml"
            (self.directory / name).write_bytes(raw)
        log.info("mail to %s: %s", ", ".join(mail.recipients), mail.subject)
        return "250 Message accepted for delivery"


async def start_sink(handler: MailSink, host: str = "127.0.0.1", port: int = 1025) -> Any:
    """Serve ``handler`` on ``host:port`` in the running loop; returns the ``asyncio.Server``
    (``server.close(); await server.wait_closed()`` stops it)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="smtp-sink", ident="eventbooking smtp sink"), host, port
    )


async def _main(host: str, port: int, directory: Path) -> None:
    server = await start_sink(MailSink(directory), host, port)
    log.info("SMTP sink listening on %s:%d, writing mail to %s/", host, port, directory)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".var/mail"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    try:
        asyncio.run(_main(args.host, args.port, args.dir))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
