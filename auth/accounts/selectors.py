"""Reads."""

from __future__ import annotations

import uuid
from typing import Any

from auth.accounts.keys import key_ring
from auth.accounts.models import User


def user_get(*, user_id: uuid.UUID) -> User | None:
    return User.objects.filter(id=user_id, is_active=True).first()


def user_get_by_email(*, email: str) -> User | None:
    return User.objects.filter(email__iexact=email.strip()).first()


def jwks_get() -> dict[str, Any]:
    """The public keys that verify our tokens (current and still-accepted earlier ones)."""
    return key_ring().jwks()
