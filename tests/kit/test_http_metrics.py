"""The HTTP metrics' method label is bounded: a method the platform does not know is OTHER."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from kit import metrics


def _methods(service: str) -> set[str]:
    return {
        sample.labels["method"]
        for family in metrics.REGISTRY.collect()
        if family.name == "http_requests"
        for sample in family.samples
        if sample.labels.get("service") == service
    }


async def test_unknown_methods_are_counted_as_other() -> None:
    api = FastAPI()

    @api.api_route("/things", methods=["GET", "BREW", "PROPFIND"])
    async def things() -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = metrics.HttpMetricsMiddleware(api, service="method-label-test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        for method in ("GET", "BREW", "PROPFIND", "X-INVENTED-1", "X-INVENTED-2"):
            await c.request(method, "/things")
    assert _methods("method-label-test") == {"GET", "OTHER"}
    assert metrics.method_label("PATCH") == "PATCH" and metrics.method_label("brew") == "OTHER"
