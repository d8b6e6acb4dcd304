"""The FastAPI + FastStream services of the platform (they share the top-level ``kit``)."""
