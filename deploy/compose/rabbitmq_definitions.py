"""Renders the broker's definitions with the users' passwords, for loading at boot.

``rabbitmq-definitions.json`` (committed) holds the users, their permissions and topic
permissions, and NO password: an empty ``password_hash`` cannot be logged in with. This script
fills in each user's hash from the environment and writes the file RabbitMQ loads
(``load_definitions`` in rabbitmq.conf)::

    python rabbitmq_definitions.py rabbitmq-definitions.json /out/definitions.json

Each user ``<name>`` takes its password from ``RABBITMQ_PASSWORD_<NAME>`` (upper case:
``RABBITMQ_PASSWORD_ADMIN``, ``RABBITMQ_PASSWORD_BOOKING``...); a missing or empty one is an
error, never a user without a password. Only hashes are written (RabbitMQ's
``rabbit_password_hashing_sha256``: base64 of a 4-byte salt followed by SHA-256(salt + password)),
so the rendered file holds no password. Standard library only: it runs in any Python image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HASHING = "rabbit_password_hashing_sha256"


def password_hash(password: str) -> str:
    """The hash RabbitMQ's internal backend stores and checks for ``password``."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def password_variable(user: str) -> str:
    return f"RABBITMQ_PASSWORD_{user.upper()}"


def render(definitions: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``definitions`` with every user's password hash from ``env``; raises if one is missing."""
    missing = [
        password_variable(u["name"])
        for u in definitions["users"]
        if not env.get(password_variable(u["name"]))
    ]
    if missing:
        raise SystemExit(f"rabbitmq_definitions: set {', '.join(missing)}")
    users = [
        {
            **u,
            "password_hash": password_hash(env[password_variable(u["name"])]),
            "hashing_algorithm": HASHING,
        }
        for u in definitions["users"]
    ]
    return {**definitions, "users": users}


def main(argv: list[str]) -> None:
    source, target = Path(argv[1]), Path(argv[2])
    rendered = render(json.loads(source.read_text()), os.environ)
    target.write_text(json.dumps(rendered, indent=2))
    target.chmod(0o644)  # read by the broker's own user; holds hashes only
    print(f"rabbitmq_definitions: {len(rendered['users'])} users written to {target}")


if __name__ == "__main__":
    main(sys.argv)
