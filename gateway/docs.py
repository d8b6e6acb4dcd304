"""One OpenAPI document for the whole public API, assembled from the services' own documents,
and the index of their AsyncAPI documents.

Each service's ``/openapi.json`` is fetched when the merged document is asked for (cached for
``OPENAPI_CACHE_SECONDS``); a service that is down is left out and named in the description.
Only paths the gateway actually routes to that service are kept, so internal and operational
routes (``/internal/*``, ``/health``, ``/ready``, ``/asyncapi*``) never appear. Components whose
names clash between services with different content are renamed ``<Service><Name>`` (with every
``$ref`` rewritten).

The merged document is made for client generators: ``servers`` names the gateway, every
operation states its ``security`` (``[]`` for the public routes of :func:`gateway.routing.is_public`),
and the errors the gateway itself answers for any route (401 without a token, 413, 429, 502, 503,
504) are added to each operation as the one shared ``Problem`` schema (``kit.problems``).
Operation ids come from the services (the rule in ``kit.openapi``).
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
import time
from typing import Any

import aiohttp

from gateway.routing import Upstream, is_public
from kit.problems import PROBLEM_JSON, PROBLEM_SCHEMA

TITLE = "Event booking platform API"
VERSION = "1.0.0"
DESCRIPTION = (
    "The public API of the event booking platform, served by the API gateway. "
    "Authenticate with `Authorization: Bearer <access token>` from `POST /auth/login`. "
    "Errors are RFC 9457 problem details; every response carries `X-Trace-Id`."
)
REF_PREFIX = "#/components/"
SERVERS = [{"url": "/", "description": "The API gateway that serves this document"}]
_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": f"{REF_PREFIX}schemas/Problem"}}}
# What the gateway answers for a proxied route, whatever the service would have said.
_GATEWAY_ERRORS = {
    "429": "Rate limit exceeded (`Retry-After`)",
    "502": "The service behind this route gave no valid answer",
    "503": "The service behind this route is unavailable (`Retry-After`)",
    "504": "The service behind this route did not answer in time",
}
_BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "Access token from POST /auth/login",
}


async def fetch_json(session: aiohttp.ClientSession, url: str, timeout: float) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        return json.loads(await resp.read())


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v in renames:
                out[k] = renames[v]
            else:
                out[k] = _rewrite_refs(v, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def merge_openapi(
    documents: dict[str, dict[str, Any]], upstreams: list[Upstream], missing: dict[str, str]
) -> dict[str, Any]:
    """Merge the services' documents (``documents``: service name -> its OpenAPI document)."""
    by_name = {u.name: u for u in upstreams}
    paths: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    tags: dict[str, dict[str, Any]] = {}
    for service, doc in documents.items():
        upstream = by_name[service]
        # Rename this service's components that clash with different ones already merged.
        renames: dict[str, str] = {}
        for section, items in (doc.get("components") or {}).items():
            for name, value in (items or {}).items():
                existing = components.get(section, {}).get(name)
                if existing is not None and existing != value:
                    new = f"{service.capitalize()}{name}"
                    renames[f"{REF_PREFIX}{section}/{name}"] = f"{REF_PREFIX}{section}/{new}"
        doc = _rewrite_refs(copy.deepcopy(doc), renames) if renames else doc
        for section, items in (doc.get("components") or {}).items():
            merged = components.setdefault(section, {})
            for name, value in (items or {}).items():
                new_ref = renames.get(f"{REF_PREFIX}{section}/{name}")
                merged[new_ref.rsplit("/", 1)[1] if new_ref else name] = value
        for path, item in (doc.get("paths") or {}).items():
            if upstream.serves(path) and not path.startswith(upstream.prefix + "/internal"):
                paths[path] = _as_served_by_gateway(path, item)
        for tag in doc.get("tags") or []:
            if isinstance(tag, dict) and "name" in tag:
                tags.setdefault(tag["name"], tag)

    description = DESCRIPTION
    if documents:
        description += "\n\nIncluded services: " + ", ".join(sorted(documents)) + "."
    if missing:
        description += (
            "\n\nLeft out (their documents could not be fetched just now): "
            + "; ".join(f"{name} ({why})" for name, why in sorted(missing.items()))
            + "."
        )
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA  # (each service has the same one)
    components.setdefault("securitySchemes", {}).setdefault("HTTPBearer", _BEARER)
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": description},
        "servers": SERVERS,
        "paths": dict(sorted(paths.items())),
        "components": components,
        "x-services": {"included": sorted(documents), "missing": missing},
    }
    if tags:
        merged["tags"] = list(tags.values())
    return merged


def _as_served_by_gateway(path: str, item: dict[str, Any]) -> dict[str, Any]:
    """A path item as the gateway serves it: ``security`` stated on each operation (the
    gateway's public routes take none, every other route a bearer token), and the gateway's own
    error answers added as problems."""
    item = copy.deepcopy(item)
    sample = path.replace("{", "").replace("}", "")  # /events/{event_id} -> /events/event_id
    for method, operation in item.items():
        if not isinstance(operation, dict) or "responses" not in operation:
            continue
        responses = operation["responses"]
        if is_public(method.upper(), sample):
            operation["security"] = []
        else:
            operation["security"] = operation.get("security") or [{"HTTPBearer": []}]
            responses.setdefault("401", {"description": "Missing or invalid access token"})
        if "requestBody" in operation:
            responses.setdefault("413", {"description": "The body is too large"})
        for status, description in _GATEWAY_ERRORS.items():
            responses.setdefault(status, {"description": description})
        for status, response in responses.items():
            if status[:1] in ("4", "5"):
                response["content"] = copy.deepcopy(_PROBLEM)
        operation["responses"] = dict(sorted(responses.items()))
    return item


class OpenAPIAggregator:
    """Fetches and merges the services' documents, with a short cache."""

    def __init__(self, upstreams: list[Upstream], *, ttl: float, timeout: float) -> None:
        self.upstreams = upstreams
        self.ttl = ttl
        self.timeout = timeout
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def document(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with self._lock:
            if self._cached and time.monotonic() < self._cached[0]:
                return self._cached[1]
            results = await asyncio.gather(
                *(
                    fetch_json(session, f"{u.url}/openapi.json", self.timeout)
                    for u in self.upstreams
                ),
                return_exceptions=True,
            )
            documents: dict[str, dict[str, Any]] = {}
            missing: dict[str, str] = {}
            for upstream, result in zip(self.upstreams, results, strict=True):
                if isinstance(result, dict) and isinstance(result.get("paths"), dict):
                    documents[upstream.name] = result
                elif isinstance(result, BaseException):
                    missing[upstream.name] = _reason(result)
                else:
                    missing[upstream.name] = "not an OpenAPI document"
            doc = merge_openapi(documents, self.upstreams, missing)
            # Cache a complete document for the full TTL, an incomplete one only briefly.
            ttl = self.ttl if not missing else min(self.ttl, 2.0)
            self._cached = (time.monotonic() + ttl, doc)
            return doc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "unreachable"
    return str(exc) or type(exc).__name__


def asyncapi_index_page(upstreams: list[Upstream]) -> str:
    items = "\n".join(
        f"<li><strong>{html.escape(u.name)}</strong>: "
        f'<a href="/asyncapi/{html.escape(u.name)}">document</a> · '
        f'<a href="/asyncapi/{html.escape(u.name)}.json">JSON</a></li>'
        for u in upstreams
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Event booking platform - AsyncAPI</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;line-height:1.6}}</style>
</head><body>
<h1>Event booking platform: message contracts</h1>
<p>Every service publishes and consumes typed, versioned messages over RabbitMQ. Each
service's AsyncAPI document describes its channels, payload schemas and bindings.</p>
<ul>
{items}
</ul>
<p>HTTP API: <a href="/docs">/docs</a> (<a href="/openapi.json">openapi.json</a>).</p>
</body></html>"""
