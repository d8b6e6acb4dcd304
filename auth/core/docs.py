"""The auth service's API documentation, served like the FastAPI services serve theirs:
``GET /openapi.json`` (drf-spectacular, generated once per process), ``GET /docs`` (Swagger UI)
and the self-hosted front-end assets under ``/_assets`` (:mod:`kit.assets`), so the pages
work offline and load nothing from a CDN."""

from __future__ import annotations

from functools import cache

from django.http import HttpRequest, HttpResponse
from django.views.static import serve
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from kit import assets

TITLE = "Auth service"


@cache
def openapi_document() -> bytes:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return OpenApiJsonRenderer().render(schema, renderer_context={})


def openapi_json(request: HttpRequest) -> HttpResponse:
    return HttpResponse(openapi_document(), content_type="application/json")


def swagger_ui(request: HttpRequest) -> HttpResponse:
    page = assets.swagger_page(TITLE, "/openapi.json")
    return HttpResponse(page.body, content_type="text/html; charset=utf-8")


def asset(request: HttpRequest, path: str) -> HttpResponse:
    """A file of ``assets.ASSETS_DIR`` (Django's static view: no path escapes the directory)."""
    response = serve(request, path, document_root=assets.ASSETS_DIR)
    if not response.streaming:  # 304 Not Modified
        return response
    # Under ASGI Django reads a file response's synchronous iterator whole anyway (and warns);
    # read it here instead. A few MB at most, and only the docs pages load them.
    buffered = HttpResponse(b"".join(response.streaming_content), status=response.status_code)
    for name, value in response.headers.items():
        buffered.headers[name] = value
    return buffered
