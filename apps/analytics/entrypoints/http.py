"""HTTP routes of the analytics service. They translate HTTP into use-case calls, nothing more."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BeforeValidator

from apps.analytics import handlers
from apps.analytics.domain import Window
from apps.analytics.schemas import DailyReportPublic, ReportPublic, daily_csv, report_csv
from kit.csv_export import CSV, csv_response, wants_csv
from kit.deps import Deps
from kit.security import Principal, require_role

router = APIRouter(prefix="/analytics", tags=["analytics"])

ERRORS = {
    401: {"description": "Missing or invalid access token"},
    403: {"description": "Customers have no reports"},
    404: {"description": "No such event, or not one of the organizer's"},
    422: {"description": "Invalid filters (e.g. `from` after `to`, a time without time zone)"},
}
OK_WITH_CSV = {
    "content": {CSV: {"schema": {"type": "string"}, "example": "event_id,title,...\r\n"}},
}

EventIdFilter = Annotated[uuid.UUID | None, Query(description="Only this event.")]


# RFC 3339's date-time, what the OpenAPI document's `format: date-time` promises
_RFC_3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _iso_8601_only(value: object) -> object:
    """`from`/`to` are RFC 3339 date-times (ISO 8601 with seconds and a time zone), as the
    document says. pydantic alone also takes more: a bare number as a Unix time (a year-1 date
    then overflowed the daily series: a 500), a space for the `T`, no seconds, `+0000`."""
    if isinstance(value, str) and not _RFC_3339.fullmatch(value):
        raise ValueError(
            "Expected an RFC 3339 date-time with a time zone, e.g. 2026-01-31T18:00:00Z."
        )
    return value


From = Annotated[
    AwareDatetime | None,
    BeforeValidator(_iso_8601_only),
    Query(
        alias="from",
        description="Count facts that occurred at or after this time (ISO 8601 with time zone).",
    ),
]
To = Annotated[
    AwareDatetime | None,
    BeforeValidator(_iso_8601_only),
    Query(description="Count facts that occurred before this time (exclusive)."),
]
Viewer = Annotated[Principal, require_role("organizer", "admin")]


async def _report_query(  # async: a plain def would run in FastAPI's thread pool
    viewer: Viewer, event_id: EventIdFilter = None, from_: From = None, to: To = None
) -> dict[str, Any]:
    """What both reports are asked with, as their use cases' keyword arguments."""
    window = Window(from_, to)  # an InvalidWindow is answered by the kit's handler
    return {"viewer": viewer, "window": window, "event_id": event_id}


ReportQuery = Annotated[dict[str, Any], Depends(_report_query)]


async def _answer(
    request: Request, deps: Deps, make: Any, public: Any, to_csv: Any, filename: str, **query: Any
) -> Any:
    """Run one report use case and answer it as JSON, or as CSV when the client asks for it."""
    report = await make(deps.db, **query)
    body = public.of(report)
    return (
        csv_response(to_csv(body), filename)
        if wants_csv(request.headers.get("accept", ""))
        else body
    )


@router.get(
    "/report",
    response_model=ReportPublic,
    responses={200: OK_WITH_CSV, **ERRORS},
    summary="Bookings, tickets, payments and revenue: totals and per event",
    description="Organizers see their own events, admins every event. Each figure counts the "
    "facts that occurred inside `from` (inclusive) .. `to` (exclusive). `revenue` is gross; "
    "`refunds` and `net_revenue` are given beside it. With `Accept: text/csv`, the per-event "
    "rows as CSV (one money column per currency).",
)
async def get_report(request: Request, deps: Deps, query: ReportQuery) -> ReportPublic | Response:
    return await _answer(
        request,
        deps,
        handlers.make_report,
        ReportPublic,
        report_csv,
        "analytics-report.csv",
        **query,
    )


@router.get(
    "/report/daily",
    response_model=DailyReportPublic,
    responses={200: OK_WITH_CSV, **ERRORS},
    summary="The same figures per UTC day, for charts",
    description="Every day of the window, zero days included. `to` defaults to now, `from` to "
    "30 days before (midnight UTC); at most 366 days. CSV with `Accept: text/csv`.",
)
async def get_daily_report(
    request: Request, deps: Deps, query: ReportQuery
) -> DailyReportPublic | Response:
    return await _answer(
        request,
        deps,
        handlers.make_daily_report,
        DailyReportPublic,
        daily_csv,
        "analytics-daily.csv",
        **query,
    )
