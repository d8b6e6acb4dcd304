"""Writes: the accounts use cases. Views call these; these never see a request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from kit.security import InvalidToken
from auth.accounts import throttling, tokens
from auth.accounts.emails import email_address
from auth.accounts.errors import EmailTaken, InvalidCredentials, InvalidRefreshToken
from auth.accounts.models import REGISTRABLE_ROLES, RefreshToken, Role, User
from auth.accounts.outbox import outbox_write
from auth.accounts.selectors import user_get_by_email
from contracts.messages import UserRegistered


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    token_type: str = "Bearer"


def _user_registered(user: User) -> UserRegistered:
    return UserRegistered(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        phone=user.phone,
        producer="auth",
    )


def user_create(
    *,
    email: str,
    password: str,
    full_name: str = "",
    role: str = Role.CUSTOMER,
    phone: str | None = None,
    allow_admin: bool = False,
) -> User:
    """Create an account and, in the same transaction, its ``user_registered`` message.

    Raises :class:`django.core.exceptions.ValidationError` (weak password, admin role) or
    :class:`EmailTaken`.
    """
    if role not in REGISTRABLE_ROLES and not (allow_admin and role == Role.ADMIN):
        raise ValidationError(
            {"role": ValidationError("Nobody can register as admin.", code="invalid_choice")}
        )
    address = email_address(email)  # 422 on ``email`` for a non-ASCII local part
    user = User(
        email=address.display,
        email_canonical=address.canonical,
        full_name=full_name.strip(),
        role=role,
        phone=phone,
    )
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.error_list}) from exc
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
            outbox_write(_user_registered(user))
    except IntegrityError as exc:
        if "uq_users_email_canonical" in str(exc):
            raise EmailTaken() from exc
        raise
    return user


def user_register(*, client_address: str, **fields: Any) -> User:
    """A registration from the public API: within the registration limits, then
    :func:`user_create`. Raises :class:`RegistrationThrottled` too."""
    throttling.registration_take(address=client_address)
    return user_create(**fields)


class AdminEmailBelongsToAnotherAccount(Exception):
    """ADMIN_EMAIL names an existing account that is not an admin."""


def admin_ensure(*, email: str, password: str) -> User:
    """Make sure an admin with these credentials exists (idempotent; start-up bootstrap).

    Never promotes an existing non-admin account: whoever registered that address first (maybe
    an attacker expecting the operator to configure it) would become admin. That raises
    :class:`AdminEmailBelongsToAnotherAccount`; the caller logs it and starts anyway. A changed
    password revokes every refresh-token family of the admin (old sessions must not survive).
    """
    existing = user_get_by_email(email=email)
    if existing is None:
        try:
            return user_create(
                email=email,
                password=password,
                role=Role.ADMIN,
                allow_admin=True,
                full_name="Administrator",
            )
        except EmailTaken:  # another replica created it a moment ago
            existing = user_get_by_email(email=email)
            assert existing is not None
    if existing.role != Role.ADMIN:
        raise AdminEmailBelongsToAnotherAccount(
            f"ADMIN_EMAIL {email!r} belongs to an existing {existing.role} account; it is not "
            "promoted. Choose another address or change that account's role by hand."
        )
    changed = []
    if not existing.is_active:
        existing.is_active = True
        changed.append("is_active")
    password_changed = not existing.check_password(password)
    if password_changed:
        existing.set_password(password)
        changed.append("password")
    if changed:
        with transaction.atomic():
            existing.save(update_fields=changed)
            if password_changed:
                user_sessions_revoke(user=existing)
    return existing


def user_sessions_revoke(*, user: User) -> int:
    """Revoke every refresh-token family of the user (a password or role change)."""
    return RefreshToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def session_logout(*, refresh_token: str) -> None:
    """Revoke the rotation family of this refresh token (any of its tokens, used or not).

    Idempotent, and silent about tokens it does not know (invalid signature, expired, another
    type): there is nothing to revoke, and the answer must not tell a caller which tokens exist.
    """
    try:
        claims = tokens.verify_refresh(refresh_token)
    except InvalidToken:
        return
    stored = RefreshToken.objects.filter(jti=claims["jti"], user_id=claims["sub"]).first()
    if stored is not None:
        RefreshToken.objects.filter(family_id=stored.family_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )


def _issue_pair(user: User, *, family_id: uuid.UUID) -> TokenPair:
    access_ttl, refresh_ttl = settings.JWT_ACCESS_TTL_SECONDS, settings.JWT_REFRESH_TTL_SECONDS
    access = tokens.mint(
        user_id=user.id, role=user.role, token_type="access", ttl_seconds=access_ttl
    )
    refresh = tokens.mint(
        user_id=user.id, role=user.role, token_type="refresh", ttl_seconds=refresh_ttl
    )
    RefreshToken.objects.create(
        jti=refresh.jti, family_id=family_id, user=user, expires_at=refresh.expires_at
    )
    return TokenPair(
        access_token=access.token,
        refresh_token=refresh.token,
        expires_in=access_ttl,
        refresh_expires_in=refresh_ttl,
    )


def user_login(*, email: str, password: str, client_address: str) -> TokenPair:
    """Check the credentials (within the brute-force budgets) and start a token family.

    Raises :class:`LoginThrottled` or :class:`InvalidCredentials`.
    """
    throttling.login_attempt_take(email=email, address=client_address)
    user = user_get_by_email(email=email)
    if user is None or not user.is_active:
        make_password(password)  # same cost as a real check: no timing oracle for accounts
        raise InvalidCredentials()
    if not user.check_password(password):
        raise InvalidCredentials()
    throttling.login_attempt_succeeded(email=email, address=client_address)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return _issue_pair(user, family_id=uuid.uuid4())


def tokens_refresh(*, refresh_token: str) -> TokenPair:
    """Rotate: the presented refresh token is consumed and a new pair issued in its family.

    A refresh token presented a second time means it was copied: the whole family is revoked
    (the thief's and the user's current tokens alike) and the caller gets 401.
    """
    try:
        claims = tokens.verify_refresh(refresh_token)
    except InvalidToken as exc:
        raise InvalidRefreshToken(f"Invalid refresh token: {exc}.") from exc
    reused = False
    with transaction.atomic():
        stored = (
            RefreshToken.objects.select_for_update()
            .select_related("user")
            .filter(jti=claims["jti"], user_id=claims["sub"])
            .first()
        )
        if stored is None or stored.revoked_at is not None or not stored.user.is_active:
            raise InvalidRefreshToken()
        now = timezone.now()
        if stored.used_at is not None:
            RefreshToken.objects.filter(family_id=stored.family_id, revoked_at__isnull=True).update(
                revoked_at=now
            )
            reused = True
        else:
            stored.used_at = now
            stored.save(update_fields=["used_at"])
            pair = _issue_pair(stored.user, family_id=stored.family_id)
    if reused:  # raised after the commit: the revocation must stick
        raise InvalidRefreshToken("This refresh token was already used; its session is revoked.")
    return pair


def refresh_tokens_purge(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Housekeeping: forget refresh tokens that expired a while ago."""
    deleted, _ = RefreshToken.objects.filter(expires_at__lt=timezone.now() - older_than).delete()
    return deleted
