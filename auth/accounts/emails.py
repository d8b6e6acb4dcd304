"""The one canonical form of an e-mail address, used for every account lookup and as the
login throttle's account key, so that no two spellings can ever reach two accounts.

Decision (security): PostgreSQL under C.UTF-8 upper-cases ``ı`` (dotless i) to ``I`` and ``ſ``
(long s) to ``S``, so case-insensitive SQL comparisons (``iexact``, ``UPPER``/``LOWER``) let a
look-alike such as ``admın@example.com`` register beside ``admin@example.com`` and then match the
same login. Rather than chase Unicode case rules in three places, an address is accepted only if
its *local part* is ASCII (a non-ASCII one is a 422 naming the field ``email``); its *domain* is
IDNA-encoded to ASCII (email-validator does that, mapping e.g. fullwidth letters); and the
canonical form is that whole ASCII address lower-cased. It is stored in its own unique-indexed
column (``users.email_canonical``), so a lookup by canonical form matches at most one row.
The displayed ``email`` is the ASCII address as typed (local part's case kept, domain normalised).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from email_validator import EmailNotValidError, validate_email


@dataclass(frozen=True)
class Address:
    display: str  # ASCII; the local part as typed, the domain lower-case (IDNA)
    canonical: str  # display.lower(): the identity of the account


def email_address(raw: str) -> Address:
    """Parse an address for an account; :class:`ValidationError` on field ``email`` if refused."""
    try:
        # No DNS lookups: registration must not depend on the resolver; SMTPUTF8 refused, so
        # a non-ASCII local part is an error rather than a second identity.
        parsed = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValidationError({"email": ValidationError(str(exc), code="invalid")}) from exc
    return Address(display=parsed.ascii_email, canonical=parsed.ascii_email.lower())


def canonical_or_none(raw: str) -> str | None:
    """The canonical form, or None when no account can have this address (a login lookup)."""
    try:
        return email_address(raw).canonical
    except ValidationError:
        return None
