"""Wires the notifications service: its spec for the kit's app factory."""

from __future__ import annotations

from pathlib import Path

from kit.service import Service, ServiceSpec
from apps.notifications.config import NotificationSettings
from apps.notifications.deps import NotificationsDeps
from apps.notifications.entrypoints.http import router
from apps.notifications.entrypoints.messages import subscribe
from apps.notifications.entrypoints.worker import (
    deliver_notifications,
    deliver_webhooks,
    keep_bindings,
)

SPEC = ServiceSpec(
    name="notifications",
    niceness=10,  # off the booking path: yields the CPU to it (kit.runtime.set_niceness)
    title="Notifications service",
    description="Tells users what happened: welcome, booking confirmed / cancelled / expired, "
    "payment failed, refunds, cancelled events, and free text on the `notifications` channel. "
    "E-mail over SMTP, SMS and push through providers; every notification is stored with its "
    "delivery status and sent once. Also passes booking, payment and event messages on to "
    "organizers' signed webhooks.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    subscribe=subscribe,
    background=[deliver_notifications, deliver_webhooks, keep_bindings],
    settings_class=NotificationSettings,
    deps=NotificationsDeps.build,
)


def build(settings: NotificationSettings | None = None, **overrides: object) -> Service:
    return Service(SPEC, settings, **overrides)
