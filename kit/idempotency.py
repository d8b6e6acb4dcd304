"""``Idempotency-Key`` for HTTP commands (Stripe's semantics).

* The first request with a key runs; its response (success or a client error the use case
  raised) is stored with the key, in the same transaction as the effect.
* A replay with the same key and the same body gets the stored response again: same status,
  same body, no new effect. The same key with a different body is a 422.
* Concurrent duplicates: the second blocks on the key's row until the first commits, then
  replays it. Exactly one effect.
* Keys are scoped to the user and the operation, and kept at least 24 hours.
* Not stored: a 404 (the resource may only be unknown *here yet*: the platform is eventually
  consistent and clients are told to retry) and a 5xx. The key is released, so the client's
  retry with the same key runs again instead of replaying a stale "not found" for 48 hours.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kit.db import Database
from kit.uow import UnitOfWork
from kit.errors import DomainError
from kit.problems import PROBLEM_JSON, Unprocessable, problem_body_of
from kit.tables import add_kit_tables

IDEMPOTENCY = add_kit_tables(sa.MetaData())["idempotency_keys"]
RETENTION = timedelta(hours=48)  # promised: at least 24 h

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes a retried request safe: the same key and body return the first "
        "response again without a new effect. Scoped to the user; kept at least 24 hours.",
    ),
]


def _json_ready(payload: Any) -> Any:
    # not jsonable_encoder: it walks data that is JSON already again (4 % of a seat hold's CPU)
    return payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload


def fingerprint(body: Any) -> str:
    canonical = json.dumps(jsonable_encoder(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def idempotent(
    db: Database,
    *,
    scope: str,
    key: str | None,
    body: Any,
    run: Callable[[UnitOfWork], Awaitable[tuple[int, Any]]],
    single_statement: bool = False,
) -> JSONResponse:
    """Run ``run(uow)`` at most once per (scope, key); it returns (status, body): a pydantic
    model, or data already made of JSON types (e.g. ``model_dump(mode="json")``).

    ``run`` must not commit: this function commits its effect together with the stored
    response. A domain error (or :class:`~kit.problems.Problem`) raised by ``run`` rolls its
    effect back and is stored as the key's response too (so a retry gets the same 409), then
    returned. ``single_statement``:
    without a key, ``run``'s whole effect is one statement (see ``UnitOfWork``).
    """
    if key is None:
        async with UnitOfWork(db, single_statement=single_statement) as uow:
            status, payload = await run(uow)
            await uow.commit()
        return JSONResponse(_json_ready(payload), status_code=status)

    digest = fingerprint(body)
    async with UnitOfWork(db) as uow:
        claimed = (
            await uow.conn.execute(
                db.insert(IDEMPOTENCY)
                .values(scope=scope, key=key, request_hash=digest, status_code=0, response={})
                .on_conflict_do_nothing()
                .returning(IDEMPOTENCY.c.key)
            )
        ).first()
        if claimed is None:
            row = (
                await uow.conn.execute(
                    sa.select(IDEMPOTENCY).where(
                        IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key
                    )
                )
            ).one()
            await uow.rollback()
            if row.request_hash != digest:
                raise Unprocessable(
                    "This Idempotency-Key was already used with a different request body.",
                    code="idempotency-key-reused",
                )
            return _stored(row.status_code, row.response, replayed=True)

        savepoint = await uow.conn.begin_nested()
        try:
            status, payload = await run(uow)
            payload = _json_ready(payload)
            await savepoint.commit()
        except DomainError as problem:
            if _retryable(problem):
                await uow.rollback()  # the claim on the key too: a retry runs for real
                raise
            await savepoint.rollback()
            uow.discard_messages()  # nothing staged survives a rolled-back effect
            status = problem.status
            payload = problem_body_of(problem)
        await uow.conn.execute(
            IDEMPOTENCY.update()
            .where(IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key)
            .values(status_code=status, response=payload)
        )
        await uow.commit()
    return _stored(status, payload, replayed=False)


def _retryable(problem: DomainError) -> bool:
    return problem.status == 404 or problem.status >= 500


def _stored(status: int, payload: Any, *, replayed: bool) -> JSONResponse:
    media = PROBLEM_JSON if status >= 400 else "application/json"
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(payload, status_code=status, media_type=media, headers=headers)


async def purge_expired(db: Database) -> int:
    async with UnitOfWork(db) as uow:
        res = await uow.conn.execute(
            IDEMPOTENCY.delete().where(
                IDEMPOTENCY.c.created_at < sa.func.now() - sa.text("interval '48 hours'")
            )
            if db.is_postgres
            else IDEMPOTENCY.delete().where(
                IDEMPOTENCY.c.created_at < sa.func.datetime("now", "-48 hours")
            )
        )
        await uow.commit()
    return res.rowcount or 0
