"""The notifications service's dependencies: the kit's (database, settings) and its senders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

from apps.notifications.adapters.channels import Sender, build_senders
from apps.notifications.config import NotificationSettings
from apps.notifications.domain import Channel
from kit.deps import ServiceDeps, settings_of

if TYPE_CHECKING:
    from kit.service import Service


@dataclass
class NotificationsDeps(ServiceDeps):
    settings: NotificationSettings
    # One sender per channel, built (and checked) with the service; the delivery worker uses them.
    senders: dict[Channel, Sender]

    @classmethod
    def build(cls, service: Service) -> NotificationsDeps:
        settings = settings_of(service, NotificationSettings)
        return cls(db=service.db, settings=settings, senders=build_senders(settings))


Deps = Annotated[NotificationsDeps, Depends(NotificationsDeps.of_request)]
