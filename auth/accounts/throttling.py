"""Login brute-force protection, per account and per client address, with its state in
PostgreSQL so every replica shares it.

Each login *attempt* takes one unit of both budgets first, in one atomic upsert (so concurrent
attempts can never verify more passwords than the budget allows); a successful login gives the
units back (the account's counter is cleared, the address's decremented). When a budget is
spent, further attempts get 429 with ``Retry-After`` until its window ends.
"""

from __future__ import annotations

import math
import random

from django.conf import settings
from django.db import connection

from auth.accounts.emails import canonical_or_none
from auth.accounts.errors import LoginThrottled

_TAKE = """
INSERT INTO login_failures AS t (key, failures, window_started_at)
SELECT k, 1, now() FROM unnest(%(keys)s::text[]) AS k ORDER BY k
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN t.window_started_at <= now() - make_interval(secs => %(window)s)
                    THEN 1 ELSE t.failures + 1 END,
    window_started_at = CASE WHEN t.window_started_at <= now() - make_interval(secs => %(window)s)
                             THEN now() ELSE t.window_started_at END
RETURNING key, failures,
    GREATEST(1, CEIL(EXTRACT(EPOCH FROM
        t.window_started_at + make_interval(secs => %(window)s) - now())))::int
"""
_SWEEP = "DELETE FROM login_failures WHERE window_started_at < now() - make_interval(secs => %s)"

# The same upsert for SQLite (the embedded mode, one writer at a time), one key per statement;
# times are Django's SQLite text timestamps, compared as julian days.
_TAKE_SQLITE = """
INSERT INTO login_failures AS t (key, failures, window_started_at)
VALUES (%(key)s, 1, STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'now'))
ON CONFLICT (key) DO UPDATE SET
    failures = CASE
        WHEN julianday(t.window_started_at) <= julianday('now') - %(window)s / 86400.0
        THEN 1 ELSE t.failures + 1 END,
    window_started_at = CASE
        WHEN julianday(t.window_started_at) <= julianday('now') - %(window)s / 86400.0
        THEN STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'now') ELSE t.window_started_at END
RETURNING key, failures, (julianday(window_started_at) - julianday('now')) * 86400 + %(window)s
"""
_SWEEP_SQLITE = (
    "DELETE FROM login_failures"
    " WHERE julianday(window_started_at) < julianday('now') - %s / 86400.0"
)


def account_key(email: str) -> str:
    """The account's canonical address (auth.accounts.emails): every spelling, one budget. An
    address no account can have gets a key of its own kind, never equal to an account's."""
    canonical = canonical_or_none(email)
    return f"account:{canonical}" if canonical else f"no-account:{email.strip().lower()}"


def address_key(address: str) -> str:
    return f"address:{address}"


def login_attempt_take(*, email: str, address: str) -> None:
    """Spend one attempt from both budgets; :class:`LoginThrottled` if either is exhausted."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    limits = {
        account_key(email): settings.LOGIN_MAX_FAILURES_PER_ACCOUNT,
        address_key(address): settings.LOGIN_MAX_FAILURES_PER_ADDRESS,
    }
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            rows = []
            for key in sorted(limits):
                cur.execute(_TAKE_SQLITE, {"key": key, "window": window})
                rows += [(k, used, max(1, math.ceil(left))) for k, used, left in cur.fetchall()]
            if random.random() < 0.01:  # noqa: S311
                cur.execute(_SWEEP_SQLITE, [window * 2])
        else:
            cur.execute(_TAKE, {"keys": sorted(limits), "window": window})
            rows = cur.fetchall()
            if random.random() < 0.01:  # noqa: S311 - occasional clean-up of expired windows
                cur.execute(_SWEEP, [window * 2])
    waits = [retry for key, used, retry in rows if used > limits[key]]
    if waits:
        raise LoginThrottled(retry_after=max(waits))


def login_attempt_succeeded(*, email: str, address: str) -> None:
    """A correct password: the account starts afresh, the address gets its unit back."""
    with connection.cursor() as cur:
        cur.execute("DELETE FROM login_failures WHERE key = %s", [account_key(email)])
        cur.execute(
            "UPDATE login_failures SET failures = GREATEST(failures - 1, 0) WHERE key = %s"
            if connection.vendor != "sqlite"
            else "UPDATE login_failures SET failures = MAX(failures - 1, 0) WHERE key = %s",
            [address_key(address)],
        )
