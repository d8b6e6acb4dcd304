"""The read model's rules, without I/O: transitions counted once, in any order."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.analytics.domain import (
    Activity,
    BookingRecord,
    Figures,
    InvalidWindow,
    PaymentRecord,
    Window,
)

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def booking() -> BookingRecord:
    return BookingRecord(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), 2, Decimal("40.00"), "EUR")


@pytest.mark.parametrize(
    ("history", "status"),
    [
        ([("created", 0)], "pending"),
        ([("created", 0), ("confirmed", 1)], "confirmed"),
        ([("created", 0), ("confirmed", 1), ("cancelled", 2)], "cancelled"),
        ([("created", 0), ("expired", 1)], "expired"),
        ([("created", 0), ("expired", 1), ("confirmed", 2)], "confirmed"),  # paid after expiry
        ([("created", 0), ("confirmed", 1), ("cancelled", 1)], "cancelled"),  # same instant
    ],
)
def test_status_is_the_latest_transition_whatever_the_arrival_order(history, status):
    for order in itertools.permutations(history):
        record = booking()
        for transition, minutes in order:
            record = record.record(transition, T0 + timedelta(minutes=minutes))
        assert record.status == status, order
        for transition, minutes in history:
            assert getattr(record, f"{transition}_at") == T0 + timedelta(minutes=minutes)


def test_a_transition_told_twice_keeps_its_first_time():
    record = booking().record("confirmed", T0 + timedelta(minutes=5))
    record = record.record("confirmed", T0 + timedelta(minutes=9))
    record = record.record("confirmed", T0 + timedelta(minutes=1))
    assert record.confirmed_at == T0 + timedelta(minutes=1)


def test_payment_keeps_the_first_refund_amount_and_learns_its_event():
    event_id = uuid.uuid4()
    p = PaymentRecord(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), None, Decimal("40.00"), "EUR")
    p = p.record("refunded", T0 + timedelta(minutes=2), refunded_amount=Decimal("40.00"))
    p = p.record("succeeded", T0, event_id=event_id)
    p = p.record("refunded", T0 + timedelta(minutes=3), refunded_amount=Decimal("1.00"))
    assert (p.status, p.refunded_amount, p.event_id) == ("refunded", Decimal("40.00"), event_id)


def test_figures_fold_activity_into_counts_money_and_conversion():
    f = Figures()
    for a in [
        Activity("booking_created", 3),
        Activity("hold_paid", 1),
        Activity("booking_confirmed", 1, quantity=2),
        Activity("payment_succeeded", 1, currency="EUR", amount=Decimal("40.00")),
        Activity("payment_refunded", 1, currency="EUR", amount=Decimal("15.00")),
        Activity("payment_succeeded", 2, currency="USD", amount=Decimal("7.50")),
    ]:
        f.add(a)
    f.show_currency("GBP")
    assert (f.bookings_created, f.bookings_confirmed, f.tickets_sold) == (3, 1, 2)
    assert f.conversion == Decimal("0.3333")
    assert f.net_revenue == {"EUR": Decimal("25.00"), "GBP": Decimal(0), "USD": Decimal("7.50")}
    assert Figures().conversion is None


def test_a_window_cannot_end_before_it_starts():
    with pytest.raises(InvalidWindow):
        Window(T0, T0 - timedelta(seconds=1))
    assert Window(T0, T0).start == T0


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00+05:00", None),
        (None, "9999-12-31T23:00:00-05:00"),
        (None, "0001-01-01T00:00:00+00:00"),
    ],
)
def test_a_window_at_the_calendars_edge_is_invalid_not_a_crash(start, end):
    from datetime import datetime

    from apps.analytics.domain import InvalidWindow, Window

    with pytest.raises(InvalidWindow):
        Window(
            datetime.fromisoformat(start) if start else None,
            datetime.fromisoformat(end) if end else None,
        )
