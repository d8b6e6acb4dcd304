"""Process entry point: ``uvicorn apps.events.main:app`` (HTTP + consumers + outbox relay)."""

from apps.events.bootstrap import build
from kit.process import process_service

service = process_service(build)
app, stream = service.api, service.stream  # `faststream docs gen apps.events.main:stream`
