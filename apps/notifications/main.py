"""Process entry point: ``uvicorn apps.notifications.main:app`` (HTTP + consumers + delivery
worker + outbox relay)."""

from apps.notifications.bootstrap import build
from kit.process import process_service

service = process_service(build)
app, stream = service.api, service.stream  # `faststream docs gen apps.notifications.main:stream`
