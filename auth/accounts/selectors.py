"""Reads."""

from __future__ import annotations

import uuid
from typing import Any

from auth.accounts.emails import canonical_or_none
from auth.accounts.keys import key_ring
from auth.accounts.models import User


def user_get(*, user_id: uuid.UUID) -> User | None:
    return User.objects.filter(id=user_id, is_active=True).first()


def user_get_by_email(*, email: str) -> User | None:
    """The one account of this address in any case (``auth.accounts.emails``), if any."""
    canonical = canonical_or_none(email)
    return None if canonical is None else User.objects.filter(email_canonical=canonical).first()


def jwks_get() -> dict[str, Any]:
    """The public keys that verify our tokens (current and still-accepted earlier ones)."""
    return key_ring().jwks()
