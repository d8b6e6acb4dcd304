"""Login brute-force protection, with its state in PostgreSQL so every replica shares it.

Three budgets per window (``LOGIN_FAILURE_WINDOW_SECONDS``):

* per (account, client address), small (``LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS``, 5): the hard
  limit on guessing one account's password. Keyed on the pair, so an attacker who spends it
  from their addresses does not lock the owner out from the owner's address;
* per client address (``LOGIN_MAX_FAILURES_PER_ADDRESS``, 20): one address guessing many accounts;
* per account, much larger (``LOGIN_MAX_FAILURES_PER_ACCOUNT``, 100): the ceiling on a guessing
  campaign spread over many addresses. Reaching it does lock the account for the window; that
  takes a botnet, and it bounds the guesses such a campaign gets.

Each login *attempt* takes one unit of every budget first, in one atomic upsert (so concurrent
attempts can never verify more passwords than the budget allows); a successful login gives the
units back (the pair's counter is cleared, the address's and account's decremented). When a
budget is spent, further attempts get 429 with ``Retry-After`` until its window ends.
"""

from __future__ import annotations

import math
import random

from django.conf import settings
from django.db import connection

from auth.accounts.emails import canonical_or_none
from auth.accounts.errors import LoginThrottled, RegistrationThrottled

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


def pair_key(email: str, address: str) -> str:
    return f"{account_key(email)}|{address}"


def _take(limits: dict[str, int], window: int) -> int | None:
    """Count one unit on each key (fixed windows of ``window`` seconds) in one atomic statement;
    the ``Retry-After`` seconds if any key is over its limit, else None."""
    # Occasional clean-up of windows long over; twice the longest window any caller uses.
    sweep_after = 2 * max(settings.LOGIN_FAILURE_WINDOW_SECONDS, REGISTRATION_WINDOWS[0])
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            rows = []
            for key in sorted(limits):
                cur.execute(_TAKE_SQLITE, {"key": key, "window": window})
                rows += [(k, used, max(1, math.ceil(left))) for k, used, left in cur.fetchall()]
            if random.random() < 0.01:  # noqa: S311
                cur.execute(_SWEEP_SQLITE, [sweep_after])
        else:
            cur.execute(_TAKE, {"keys": sorted(limits), "window": window})
            rows = cur.fetchall()
            if random.random() < 0.01:  # noqa: S311
                cur.execute(_SWEEP, [sweep_after])
    waits = [retry for key, used, retry in rows if used > limits[key]]
    return max(waits) if waits else None


def login_attempt_take(*, email: str, address: str) -> None:
    """Spend one attempt from every budget; :class:`LoginThrottled` if any is exhausted."""
    limits = {
        pair_key(email, address): settings.LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS,
        account_key(email): settings.LOGIN_MAX_FAILURES_PER_ACCOUNT,
        address_key(address): settings.LOGIN_MAX_FAILURES_PER_ADDRESS,
    }
    wait = _take(limits, settings.LOGIN_FAILURE_WINDOW_SECONDS)
    if wait is not None:
        raise LoginThrottled(retry_after=wait)


# (per address, all together): fixed windows of an hour and a minute.
REGISTRATION_WINDOWS = (3600, 60)


def registration_take(*, address: str) -> None:
    """Count one registration attempt from this address and in total (each limit one atomic
    statement, in the same table as the login budgets); :class:`RegistrationThrottled` over
    either. A limit of 0 is off (load tests, test suites that create many users)."""
    per_address, overall = (
        settings.REGISTRATIONS_PER_ADDRESS_PER_HOUR,
        settings.REGISTRATIONS_PER_MINUTE,
    )
    waits = []
    if per_address:
        waits.append(_take({f"register:{address}": per_address}, REGISTRATION_WINDOWS[0]))
    if overall:
        waits.append(_take({"register:*": overall}, REGISTRATION_WINDOWS[1]))
    waits = [w for w in waits if w is not None]
    if waits:
        raise RegistrationThrottled(retry_after=max(waits))


def login_attempt_succeeded(*, email: str, address: str) -> None:
    """A correct password: the (account, address) pair starts afresh; the address and the
    account get their unit back (not a reset: the owner's login must not hand a distributed
    attacker a fresh account ceiling)."""
    greatest = "GREATEST" if connection.vendor != "sqlite" else "MAX"
    with connection.cursor() as cur:
        cur.execute("DELETE FROM login_failures WHERE key = %s", [pair_key(email, address)])
        for key in (address_key(address), account_key(email)):
            cur.execute(
                f"UPDATE login_failures SET failures = {greatest}(failures - 1, 0) WHERE key = %s",  # noqa: S608
                [key],
            )
