"""Self-hosted front-end assets for the docs pages, so /docs and /asyncapi work offline.

``make install`` fetches ``@asyncapi/react-component`` and ``swagger-ui-dist`` from the npm
registry into ``.var/assets`` (``ASSETS_DIR`` overrides); they are served under ``/_assets``.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = Path(os.getenv("ASSETS_DIR", ROOT / ".var" / "assets" / "node_modules"))

PREFIX = "/_assets"
ASYNCAPI_JS = f"{PREFIX}/@asyncapi/react-component/browser/standalone/index.js"
ASYNCAPI_CSS = f"{PREFIX}/@asyncapi/react-component/styles/default.min.css"
SWAGGER_JS = f"{PREFIX}/swagger-ui-dist/swagger-ui-bundle.js"
SWAGGER_CSS = f"{PREFIX}/swagger-ui-dist/swagger-ui.css"


def mount(app: FastAPI) -> None:
    app.mount(PREFIX, StaticFiles(directory=ASSETS_DIR, check_dir=False), name="assets")


def swagger_page(title: str, openapi_url: str) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - API docs",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url="data:,",
    )
