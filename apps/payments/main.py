"""Process entry point: ``uvicorn apps.payments.main:app`` (HTTP + consumers + outbox relay)."""

from apps.payments.bootstrap import build
from kit.process import process_service

service = process_service(build)
app, stream = service.api, service.stream  # `faststream docs gen apps.payments.main:stream`
