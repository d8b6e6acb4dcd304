"""A service's dependencies, typed, and the FastAPI dependency its routes reach them through.

A service's routes, subscribers and workers need its database, its settings and a few adapters
of its own (a payment provider, e-mail senders...). They live on one dataclass per service,
built once when the service is (``ServiceSpec.deps``), instead of attributes hung on the app or
the service object:

* routes take ``deps: Deps`` (``Annotated[..., Depends(...)]``, as full-stack-fastapi-template's
  ``SessionDep``); a service with adapters of its own declares its subclass and alias the same way
  in ``apps/<service>/deps.py``;
* subscribers and workers, handed the ``Service``, call ``TheirDeps.of(service)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Self, TypeVar

from fastapi import Depends, Request

from kit.db import Database
from kit.settings import ServiceSettings

if TYPE_CHECKING:
    from kit.service import Service

S = TypeVar("S", bound=ServiceSettings)


def settings_of(service: Service, kind: type[S]) -> S:
    """``service``'s settings as its own settings class (its spec's ``settings_class``)."""
    settings = service.settings
    if not isinstance(settings, kind):
        raise TypeError(f"{service.spec.name}'s settings are not {kind.__name__}")
    return settings


@dataclass
class ServiceDeps:
    """What every service has: its own database and its settings."""

    db: Database
    settings: ServiceSettings

    @classmethod
    def build(cls, service: Service) -> ServiceDeps:
        """The dependencies of a service with no adapters of its own (the spec's default)."""
        return cls(db=service.db, settings=service.settings)

    @classmethod
    def of(cls, service: Service) -> Self:
        """``service``'s dependencies, checked to be this class (a wiring mistake fails here,
        at once, not as an attribute error deep in a handler)."""
        deps = service.deps
        if not isinstance(deps, cls):
            raise TypeError(f"{service.spec.name} has {type(deps).__name__}, not {cls.__name__}")
        return deps

    @classmethod
    async def of_request(cls, request: Request) -> Self:
        """The FastAPI dependency: the dependencies of the service serving ``request``.

        ``async`` although it never waits: FastAPI runs a plain ``def`` dependency in its thread
        pool, a thread hop per request (about a tenth of a held booking's CPU in py-spy)."""
        return cls.of(request.app.state.service)


# The dependencies of a route's service, for services with no adapters of their own.
Deps = Annotated[ServiceDeps, Depends(ServiceDeps.of_request)]
