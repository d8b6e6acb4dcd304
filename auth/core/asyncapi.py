"""``GET /asyncapi.json``, ``/asyncapi.yaml`` and ``/asyncapi`` (HTML): the relay's AsyncAPI
document, served like the FastAPI services serve theirs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def _document():  # noqa: ANN202
    from auth.relay import relay

    return relay.asyncapi.to_specification()


def asyncapi_json(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_document().to_json(), content_type="application/json")


def asyncapi_yaml(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_document().to_yaml(), content_type="application/yaml")


def asyncapi_page(request: HttpRequest) -> HttpResponse:
    """The AsyncAPI document as a page, with the self-hosted assets (like ``GET /asyncapi`` of
    the FastAPI services)."""
    from faststream.specification.asyncapi.site import get_asyncapi_html

    from kit import assets

    return HttpResponse(
        get_asyncapi_html(
            _document(),
            asyncapi_js_url=assets.ASYNCAPI_JS,
            asyncapi_css_url=assets.ASYNCAPI_CSS,
            try_it_out_path=None,
        ),
        content_type="text/html; charset=utf-8",
    )
