"""Accounts, refresh-token families, login-failure counters and the transactional outbox."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class Role(models.TextChoices):
    CUSTOMER = "customer"
    ORGANIZER = "organizer"
    ADMIN = "admin"


# Nobody registers as admin; admins come from ADMIN_EMAIL/ADMIN_PASSWORD at start-up.
REGISTRABLE_ROLES = (Role.CUSTOMER, Role.ORGANIZER)


class UserManager(BaseUserManager["User"]):
    def get_by_natural_key(self, username: str) -> User:
        from auth.accounts.emails import canonical_or_none

        return self.get(email_canonical=canonical_or_none(username) or "")


class User(AbstractBaseUser):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254)  # for display: see auth.accounts.emails
    # The account's identity: every lookup and the login throttle use it (auth.accounts.emails).
    email_canonical = models.CharField(max_length=300)  # 254 + a legacy "#<id>"
    full_name = models.CharField(max_length=200, blank=True, default="")
    phone = models.CharField(max_length=16, null=True, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CUSTOMER)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    USERNAME_FIELD = "email_canonical"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        db_table = "users"
        constraints = [
            # One account per canonical address: the race-safe source of 409.
            models.UniqueConstraint(fields=["email_canonical"], name="uq_users_email_canonical"),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saving a new password or role revokes every refresh-token family of the user, however
        the change is made (an operator's shell, the start-up admin step, a future route): old
        sessions must not outlive the credentials or the rights they were issued for.

        A new password is one given with ``set_password`` since the last save (a hash upgraded
        on login keeps the password, so it keeps the sessions); a role change is checked against
        the stored row, unless ``update_fields`` leaves the role out."""
        password_set = self._password is not None
        update_fields = kwargs.get("update_fields")
        role_changed = False
        if not self._state.adding and (update_fields is None or "role" in update_fields):
            stored = User.objects.filter(pk=self.pk).values_list("role", flat=True).first()
            role_changed = stored is not None and stored != self.role
        existed = not self._state.adding
        super().save(*args, **kwargs)
        if existed and (password_set or role_changed):
            RefreshToken.objects.filter(user=self, revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )


class RefreshToken(models.Model):
    """One issued refresh token. A token is single-use; each login starts a family and every
    rotation adds to it. Presenting a consumed token again revokes the whole family (theft)."""

    jti = models.UUIDField(primary_key=True)
    family_id = models.UUIDField(db_index=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "refresh_tokens"


class LoginFailureCounter(models.Model):
    """Failed-login budget of one key (``account:<email>`` or ``address:<ip>``) in a fixed
    window. Updated with one atomic upsert, so replicas and concurrent attempts share it."""

    key = models.CharField(max_length=300, primary_key=True)
    failures = models.IntegerField(default=0)
    window_started_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "login_failures"


class OutboxMessage(models.Model):
    """The kit's outbox table (kit/tables.py), column for column, so the kit's
    OutboxRelay publishes it. Rows are written in the transaction of the state change."""

    id = models.UUIDField(primary_key=True, db_comment="= message_id")
    # now() as in the kit (transaction time); Django's Now() would be statement_timestamp().
    created_at = models.DateTimeField(
        db_default=models.Func(function="now", output_field=models.DateTimeField())
    )
    routing_key = models.CharField(max_length=100)
    message_type = models.CharField(max_length=100)
    payload = models.JSONField()
    headers = models.JSONField()
    attempts = models.IntegerField(db_default=0)

    class Meta:
        db_table = "outbox"
        indexes = [models.Index(fields=["created_at"], name="ix_outbox_created_at")]
