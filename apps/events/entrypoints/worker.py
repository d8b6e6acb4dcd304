"""The events service's background work: its queue bindings kept to what it needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.events.deps import EventsDeps
from kit.bindings import keep_reconciled

if TYPE_CHECKING:
    from kit.service import Service


async def keep_bindings(service: Service) -> None:
    """Unbind booking's messages while the service has no voucher (``kit.bindings``)."""
    deps = EventsDeps.of(service)
    await keep_reconciled(deps.bindings, service.db, every=deps.settings.bindings_reconcile_seconds)
