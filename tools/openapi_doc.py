"""The gateway's merged OpenAPI document, built in-process (no service, broker or database is
started), and a typed Python client generated from it.

    python -m tools.openapi_doc write PATH   # the merged document (what GET /openapi.json serves)
    python -m tools.openapi_doc sdk [DIR]    # + openapi-python-client into DIR (default .var/sdk)

Each FastAPI service builds its document from its app (``Service.api.openapi()``), auth from
drf-spectacular; :func:`gateway.docs.merge_openapi` merges them exactly as the running gateway
does. ``sdk`` fails on any warning of the generator (a warning means a lost or renamed type).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.docs import merge_openapi
from gateway.routing import ROUTES, routing_table

ROOT = Path(__file__).resolve().parents[1]
SDK_DIR = ROOT / ".var" / "sdk"
PACKAGE = "eventbooking_client"
CANONICAL_BROKER = "amqp://guest:guest@rabbitmq:5672/"


def service_document(name: str) -> dict[str, Any]:
    if name == "auth":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth.config.settings")
        import django

        django.setup()
        from auth.core.docs import openapi_document

        return dict(json.loads(openapi_document()))
    module = importlib.import_module(f"apps.{name}.bootstrap")
    service = module.build(rabbitmq_url=CANONICAL_BROKER)
    return dict(service.api.openapi())


def merged_document() -> dict[str, Any]:
    upstreams = routing_table({name: f"http://{name}" for name, _, _ in ROUTES})
    documents = {u.name: service_document(u.name) for u in upstreams}
    return merge_openapi(documents, upstreams, {})


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged_document(), indent=2, sort_keys=False) + "\n")


def generate_sdk(out: Path = SDK_DIR) -> str:
    """Generate the client into ``out/eventbooking_client``; returns the generator's output.
    Raises ``RuntimeError`` if it failed or warned."""
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "openapi.json"
    write(spec)
    config = out / "config.yaml"
    config.write_text(
        f"project_name_override: {PACKAGE}\npackage_name_override: {PACKAGE}\n"
        # the generator reads only JSON, text and binary bodies; a QR code's SVG is bytes to it
        "content_type_overrides:\n  image/svg+xml: application/octet-stream\n"
    )
    target = out / PACKAGE
    shutil.rmtree(target, ignore_errors=True)
    tool = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(tool),
            "generate",
            "--path",
            str(spec),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(target),
            "--overwrite",
        ],
        capture_output=True,
        text=True,
        check=False,
        # its post-hooks run ruff (from this venv) on the generated code
        env={**os.environ, "PATH": f"{tool.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or "warning" in output.lower() or not target.is_dir():
        raise RuntimeError(f"openapi-python-client failed or warned:\n{output}")
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write").add_argument("path", type=Path)
    sub.add_parser("sdk").add_argument("dir", type=Path, nargs="?", default=SDK_DIR)
    args = parser.parse_args()
    if args.command == "write":
        write(args.path)
        return 0
    try:
        output = generate_sdk(args.dir)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(output.strip())
    print(f"client: {args.dir / PACKAGE} (import {PACKAGE}; add {args.dir} to PYTHONPATH)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
