"""The bare baseline of the flash-sale benchmark: one FastAPI process doing only the conditional
seat update on the same PostgreSQL (no gateway, no auth, no idempotency, no outbox, no broker).

    uvicorn bench.baseline_app:app --port 9700      (BASELINE_DSN selects the database)
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

DSN = os.getenv("BASELINE_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
pool: asyncpg.Pool


@asynccontextmanager
async def lifespan(_app: FastAPI):
    global pool
    pool = await asyncpg.create_pool(DSN, min_size=8, max_size=8)
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


class Reserve(BaseModel):
    event_id: uuid.UUID
    quantity: int


@app.post("/reserve")
async def reserve(body: Reserve) -> JSONResponse:
    row = await pool.fetchrow(
        "UPDATE seats SET held = held + $2 WHERE event_id = $1 AND capacity - held >= $2 "
        "RETURNING held",
        body.event_id,
        body.quantity,
    )
    return JSONResponse({"held": row["held"]} if row else {}, status_code=201 if row else 409)
