"""The API gateway: the one front door for clients (routing, JWT at the edge, limits, tracing,
the merged OpenAPI document and the AsyncAPI index)."""
