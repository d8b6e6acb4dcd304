"""The FastAPI + FastStream services of the platform, and the kit they share (``apps.kit``)."""
