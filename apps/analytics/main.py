"""Process entry point: ``uvicorn apps.analytics.main:app --port 8006`` (HTTP + consumer)."""

from apps.analytics.bootstrap import build
from kit.process import process_service

service = process_service(build)
app, stream = service.api, service.stream  # `faststream docs gen apps.analytics.main:stream`
