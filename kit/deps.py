"""FastAPI dependencies shared by every service's routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from kit.db import Database
    from kit.service import Service


def service_of(request: Request) -> Service:
    """The running service that serves ``request`` (its settings, database, broker...)."""
    return request.app.state.service


def database_of(request: Request) -> Database:
    """The service's own database."""
    return request.app.state.service.db
