"""Auth serves the same Prometheus series as every other service."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def test_metrics_count_requests_by_route_template(client):
    await client.get("/auth/jwks.json")
    resp = await client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert (
        'http_requests_total{method="GET",route="/auth/jwks.json",service="auth",status="200"}'
        in resp.text
    )


async def test_metrics_label_unknown_methods_other(client):
    for method in ("BREW", "PROPFIND", "X-INVENTED"):
        await client.request(method, "/auth/jwks.json")
    text = (await client.get("/metrics")).text
    assert 'method="OTHER",route="/auth/jwks.json",service="auth"' in text
    assert 'method="BREW"' not in text and 'method="X-INVENTED"' not in text
