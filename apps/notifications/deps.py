"""The notifications service's dependencies: the kit's (database, settings) and its senders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

from apps.notifications.adapters.channels import Sender, build_senders
from apps.notifications.adapters.webhooks import SecretBox, WebhookRepository, WebhookTargets
from apps.notifications.config import NotificationSettings
from apps.notifications.domain import Channel
from apps.notifications.entrypoints.messages import webhook_only_queues
from kit.bindings import OptionalBindings
from kit.deps import ServiceDeps, settings_of

if TYPE_CHECKING:
    from kit.service import Service


@dataclass
class NotificationsDeps(ServiceDeps):
    settings: NotificationSettings
    # One sender per channel, built (and checked) with the service; the delivery worker uses them.
    senders: dict[Channel, Sender]
    # Where webhooks may go (checked at registration and every delivery), and their secrets' key.
    webhook_targets: WebhookTargets
    secret_box: SecretBox
    # Which webhook-only kinds the broker routes to the service (bound while subscribed).
    bindings: OptionalBindings

    @classmethod
    def build(cls, service: Service) -> NotificationsDeps:
        settings = settings_of(service, NotificationSettings)
        assert settings.webhook_encryption_key is not None  # the settings' validator sets it
        return cls(
            db=service.db,
            settings=settings,
            senders=build_senders(settings),
            webhook_targets=WebhookTargets(settings.webhook_allowed_hosts),
            secret_box=SecretBox(settings.webhook_encryption_key),
            bindings=OptionalBindings(
                service.broker,
                webhook_only_queues(),
                WebhookRepository.subscribed,
                enabled=service.db.is_postgres,
            ),
        )


Deps = Annotated[NotificationsDeps, Depends(NotificationsDeps.of_request)]
