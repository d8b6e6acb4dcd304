"""Generate, check and list the services' AsyncAPI documents (committed under ``asyncapi/``).

    python -m tools.asyncapi_docs write     # regenerate asyncapi/*.yaml and the index
    python -m tools.asyncapi_docs check     # fail if the committed files differ

Documents are built from each service's FastStream app exactly as the running service serves
them at ``/asyncapi.json``, with a canonical broker address so the output does not depend on the
machine it was generated on.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "asyncapi"
CANONICAL_BROKER = "amqp://guest:guest@rabbitmq:5672/"

# service name -> module whose build(**overrides) returns a kit Service (or an object with
# an `asyncapi` attribute)
SERVICES: dict[str, str] = {
    "events": "apps.events.bootstrap",
    "analytics": "apps.analytics.bootstrap",
    "notifications": "apps.notifications.bootstrap",
    "payments": "apps.payments.bootstrap",
    "booking": "apps.booking.bootstrap",
    "auth": "auth.relay",
}


def documents() -> dict[str, str]:
    docs: dict[str, str] = {}
    for name, module_path in SERVICES.items():
        module = importlib.import_module(module_path)
        service: Any = module.build(rabbitmq_url=CANONICAL_BROKER)
        # FastStream's channel order varies between processes: sort for a reproducible file.
        spec = json.loads(service.asyncapi.to_specification().to_json())
        docs[f"{name}.yaml"] = yaml.safe_dump(spec, sort_keys=True, allow_unicode=True)
    docs["index.yaml"] = _index(docs)
    return docs


def _index(docs: dict[str, str]) -> str:
    entries = []
    for filename, text in sorted(docs.items()):
        spec = yaml.safe_load(text)
        entries.append(
            {
                "service": filename.removesuffix(".yaml"),
                "title": spec["info"]["title"],
                "document": filename,
                "served_at": "/asyncapi (HTML), /asyncapi.json, /asyncapi.yaml on the service; "
                f"/asyncapi/{filename.removesuffix('.yaml')} through the gateway",
                "channels": sorted(spec.get("channels", {})),
            }
        )
    return yaml.safe_dump(
        {"title": "Event Booking Platform: AsyncAPI documents", "services": entries},
        sort_keys=False,
    )


def write() -> None:
    OUT.mkdir(exist_ok=True)
    for filename, text in documents().items():
        (OUT / filename).write_text(text)
        print(f"wrote asyncapi/{filename}")


def check() -> int:
    stale = 0
    for filename, text in documents().items():
        path = OUT / filename
        current = path.read_text() if path.exists() else ""
        if current != text:
            stale += 1
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(True),
                    text.splitlines(True),
                    f"asyncapi/{filename} (committed)",
                    f"asyncapi/{filename} (generated)",
                    n=1,
                )
            )
    if stale:
        print(f"\n{stale} AsyncAPI document(s) are stale: run `make asyncapi` and commit.")
        return 1
    print("asyncapi/ is up to date")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["write", "check"])
    args = parser.parse_args()
    if args.command == "write":
        write()
        return 0
    return check()


if __name__ == "__main__":
    raise SystemExit(main())
