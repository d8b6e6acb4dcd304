"""``GET /asyncapi.json`` and ``/asyncapi.yaml``: the relay's AsyncAPI document, served like the
FastAPI services serve theirs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def _document():  # noqa: ANN202
    from auth.relay import relay

    return relay.asyncapi.to_specification()


def asyncapi_json(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_document().to_json(), content_type="application/json")


def asyncapi_yaml(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_document().to_yaml(), content_type="application/yaml")
