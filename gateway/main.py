"""Process entry point: ``uvicorn gateway.main:app --port 8000`` (or ``python -m gateway``)."""

from gateway.app import create_app
from gateway.config import GatewaySettings
from observability import configure_telemetry

settings = GatewaySettings()
configure_telemetry("gateway", log_level=settings.log_level, log_format=settings.log_format)
app = create_app(settings)
