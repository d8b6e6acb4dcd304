"""A service's own process: what ``apps/<service>/main.py`` runs, the same for every service."""

from __future__ import annotations

from collections.abc import Callable

from kit.service import Service
from observability import configure_telemetry


def process_service(build: Callable[[], Service]) -> Service:
    """Build the service for its own process (``uvicorn apps.<service>.main:app``): its
    scheduler niceness and its telemetry (traces, logs) are the process's, so they are set here
    and not by ``build``, which tests call many times in one interpreter."""
    service = build()
    service.configure_process()
    settings = service.settings
    configure_telemetry(
        service.spec.name, log_level=settings.log_level, log_format=settings.log_format
    )
    return service
