"""HTTP response bodies of the analytics API: JSON models and their CSV rendering."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from kit.csv_export import write_csv
from apps.analytics.domain import REPORTED_COUNTS, DailyReport, Figures, Report, Window

# Signed (net revenue can go below zero when refunds in the window exceed its payments).
Amount = Annotated[
    Decimal,
    PlainSerializer(lambda v: f"{v:.2f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "examples": ["20.00"]}, mode="serialization"),
]
PerCurrency = Annotated[
    dict[str, Amount],
    Field(
        description="Decimal strings keyed by ISO 4217 currency code.", examples=[{"EUR": "40.00"}]
    ),
]


class FiguresPublic(BaseModel):
    """Counts of what happened inside the window (each by when its fact occurred)."""

    bookings_created: int = Field(description="Holds placed (bookings created).")
    bookings_confirmed: int = Field(description="Bookings paid and confirmed.")
    bookings_cancelled: int = Field(description="Bookings cancelled (any reason).")
    bookings_expired: int = Field(description="Holds that lapsed unpaid.")
    tickets_sold: int = Field(description="Seats in the bookings confirmed.")
    tickets_cancelled: int = Field(
        description="Seats of confirmed bookings that were cancelled (and refunded) in the window."
    )
    payments_succeeded: int
    payments_failed: int
    payments_refunded: int = Field(
        description="Refunds made (a payment refunded in several parts counts each part)."
    )
    revenue: PerCurrency = Field(
        description="Gross: sum of successful payments, per currency. Refunds are NOT deducted "
        "here; see `refunds` and `net_revenue`."
    )
    refunds: PerCurrency = Field(description="Money given back, per currency.")
    net_revenue: PerCurrency = Field(description="`revenue` minus `refunds`, per currency.")
    discounts: PerCurrency = Field(
        default_factory=dict,
        description="Taken off by vouchers in the bookings confirmed in the window, per "
        "currency (`revenue` is what was paid after them).",
        examples=[{"EUR": "6.00"}],
    )
    conversion: str | None = Field(
        description="Hold to paid: share of the bookings created in the window that were paid "
        "(decimal string, 4 places); null when no booking was created.",
        examples=["0.7500"],
    )

    @classmethod
    def fields_of(cls, f: Figures) -> dict[str, Any]:
        conversion = f.conversion
        return {
            "bookings_created": f.bookings_created,
            "bookings_confirmed": f.bookings_confirmed,
            "bookings_cancelled": f.bookings_cancelled,
            "bookings_expired": f.bookings_expired,
            "tickets_sold": f.tickets_sold,
            "tickets_cancelled": f.tickets_cancelled,
            "payments_succeeded": f.payments_succeeded,
            "payments_failed": f.payments_failed,
            "payments_refunded": f.payments_refunded,
            "revenue": {c: f.revenue.get(c, Decimal(0)) for c in f.currencies},
            "refunds": {c: f.refunds.get(c, Decimal(0)) for c in f.currencies},
            "net_revenue": f.net_revenue,
            "discounts": {c: f.discounts.get(c, Decimal(0)) for c in f.currencies},
            "conversion": None if conversion is None else str(conversion),
        }


class TicketTypeFiguresPublic(BaseModel):
    """One ticket type's sales in the window (in the event's currency)."""

    ticket_type_id: uuid.UUID
    name: str = Field(description="As the bookings' lines name it.")
    tickets_sold: int = Field(description="Seats of this type in the bookings confirmed.")
    tickets_cancelled: int = Field(
        description="Seats of this type of confirmed bookings cancelled."
    )
    revenue: Amount = Field(
        description="The confirmed bookings' lines of this type (seats x the price they were "
        "held at), before any booking-wide discount; refunds are not deducted."
    )


class EventFiguresPublic(FiguresPublic):
    event_id: uuid.UUID
    ticket_types: list[TicketTypeFiguresPublic] = Field(
        default_factory=list,
        description="Per ticket type with sales or cancellations in the window; a booking from "
        "before ticket types counts as its event's `General admission`.",
    )
    title: str | None = Field(description="null while the event's own facts are not yet known.")
    organizer_id: uuid.UUID | None
    starts_at: datetime | None
    status: str | None = Field(examples=["scheduled"])
    currency: str | None = Field(description="The event's ticket currency.", examples=["EUR"])


class ReportFilters(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    event_id: uuid.UUID | None
    from_: datetime | None = Field(alias="from", description="Inclusive.")
    to: datetime | None = Field(description="Exclusive.")

    @classmethod
    def of(cls, window: Window, event_id: uuid.UUID | None) -> ReportFilters:
        return cls(event_id=event_id, from_=window.start, to=window.end)


class ReportPublic(BaseModel):
    generated_at: datetime
    filters: ReportFilters
    totals: FiguresPublic = Field(description="Sum over `events`.")
    events: list[EventFiguresPublic]

    @classmethod
    def of(cls, report: Report) -> ReportPublic:
        rows = []
        for row in report.events:
            e = row.event
            rows.append(
                EventFiguresPublic(
                    event_id=row.event_id,
                    title=e.title if e else None,
                    organizer_id=e.organizer_id if e else None,
                    starts_at=e.starts_at if e else None,
                    status=e.status if e else None,
                    currency=e.currency if e else None,
                    ticket_types=[
                        TicketTypeFiguresPublic.model_validate(vars(t)) for t in row.ticket_types
                    ],
                    **FiguresPublic.fields_of(row.figures),
                )
            )
        return cls(
            generated_at=report.generated_at,
            filters=ReportFilters.of(report.window, report.event_id),
            totals=FiguresPublic(**FiguresPublic.fields_of(report.totals)),
            events=rows,
        )


class DayFiguresPublic(FiguresPublic):
    date: dt.date = Field(description="UTC day.")


class DailyReportPublic(BaseModel):
    generated_at: datetime
    filters: ReportFilters
    days: list[DayFiguresPublic] = Field(description="Every UTC day of the window, oldest first.")

    @classmethod
    def of(cls, report: DailyReport) -> DailyReportPublic:
        return cls(
            generated_at=report.generated_at,
            filters=ReportFilters.of(report.window, report.event_id),
            days=[
                DayFiguresPublic(date=d.date, **FiguresPublic.fields_of(d.figures))
                for d in report.days
            ],
        )


# --- CSV ------------------------------------------------------------------------------------

_MONEY = ["revenue", "refunds", "net_revenue"]


def _csv(lead: list[str], rows: list[dict[str, Any]]) -> str:
    """Rows with one money column per currency (``revenue_EUR``...), the same for every row.
    Written by the kit's CSV writer: a title a spreadsheet would run as a formula is text."""
    currencies = sorted({c for r in rows for c in r["revenue"]})
    header = [
        *lead,
        *REPORTED_COUNTS,
        *(f"{m}_{c}" for m in _MONEY for c in currencies),
        "conversion",
    ]
    return write_csv(
        header,
        (
            [r[k] for k in lead]
            + [r[k] for k in REPORTED_COUNTS]
            + [r[m].get(c, "0.00") for m in _MONEY for c in currencies]
            + [r["conversion"]]
            for r in rows
        ),
    )


def report_csv(report: ReportPublic) -> str:
    """The per-event rows of a report."""
    lead = ["event_id", "title", "organizer_id", "starts_at", "status", "currency"]
    return _csv(lead, [e.model_dump(mode="json") for e in report.events])


def daily_csv(report: DailyReportPublic) -> str:
    return _csv(["date"], [d.model_dump(mode="json") for d in report.days])
