"""The analytics service against the real RabbitMQ and PostgreSQL: facts go out on the domain
exchange (as the other services publish them), reach the analytics queue through the
exchange-to-exchange binding, and show up in the reports."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import aio_pika
import pytest

from apps.analytics.bootstrap import build
from contracts.envelope import Envelope
from contracts.topology import ANALYTICS_QUEUE, DOMAIN_EXCHANGE, all_queues
from tests.analytics.factories import EventFacts, now
from tests.conftest import http_client, service_fixture
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


analytics = service_fixture(build, scope="module")


@pytest.fixture
async def client(analytics):
    async with http_client(analytics) as c:
        yield c


@pytest.fixture
async def publish(analytics, amqp):
    """Publish contract messages to the domain exchange as their producers would."""
    exchange = await amqp.get_exchange(DOMAIN_EXCHANGE.name)

    async def _publish(*facts: Envelope) -> None:
        for fact in facts:
            await exchange.publish(
                aio_pika.Message(
                    fact.model_dump_json().encode(),
                    content_type="application/json",
                    message_id=str(fact.message_id),
                    type=fact.message_type,  # type: ignore[attr-defined]
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=fact.routing_key,
            )

    yield _publish
    # These facts also went to the other services' queues in this run's vhost; leave them empty
    # so a later test of those services does not consume made-up bookings.
    for queue in all_queues():
        if queue.name != ANALYTICS_QUEUE.name:
            await (await amqp.get_queue(queue.name, ensure=False)).purge()


def token(role: str, user_id: uuid.UUID | None = None) -> dict[str, str]:
    return bearer(mint(user_id or uuid.uuid4(), role))


async def report(client, headers, params: dict[str, str], path: str = "/analytics/report") -> Any:
    """A report with the query ``params``, as JSON."""
    resp = await client.get(path, params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def report_when(client, headers, until, path: str = "/analytics/report", **params: Any):
    """Poll a report until ``until(body)`` holds (the read model converges asynchronously)."""
    return await eventually(lambda: report(client, headers, params, path), until=until, timeout=10)


async def first_event_when(client, organizer: uuid.UUID, **counts: int) -> Any:
    """The organizer's report, polled until its first event's row has these counts."""
    return await report_when(
        client,
        token("organizer", organizer),
        lambda b: b["events"] and all(b["events"][0][k] == n for k, n in counts.items()),
    )


# (written out here, not taken from the service: the test checks what the report shows)
COUNTS = [
    *(f"bookings_{n}" for n in ("created", "confirmed", "cancelled", "expired")),
    *(f"tickets_{n}" for n in ("sold", "cancelled")),
    *(f"payments_{n}" for n in ("succeeded", "failed", "refunded")),
]
AMOUNTS = ["revenue", "refunds", "net_revenue", "discounts"]


def figures(**over: Any) -> dict[str, Any]:
    """A report's figures: nothing counted, no money and no conversion, but for ``over``."""
    return {
        **dict.fromkeys(COUNTS, 0),
        **{amount: {"EUR": "0.00"} for amount in AMOUNTS},
        "conversion": None,
        **over,
    }


def one_paid_booking(tickets: int, amount: str, **over: Any) -> dict[str, Any]:
    """The figures of one booking of ``tickets`` held, paid ``amount`` EUR and confirmed."""
    return figures(
        **{
            "bookings_created": 1,
            "bookings_confirmed": 1,
            "tickets_sold": tickets,
            "payments_succeeded": 1,
            "revenue": {"EUR": amount},
            "net_revenue": {"EUR": amount},
            "conversion": "1.0000",
            **over,
        }
    )


def only_figures(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in figures()}


async def test_the_saga_facts_are_counted_and_refunds_reported(client, publish):
    event = EventFacts()
    paid, declined, lapsed = event.booking(2), event.booking(1), event.booking(1)
    await publish(
        event.created(),
        paid.created(),
        paid.paid(),
        paid.confirmed(),
        declined.created(),
        declined.payment_failed(),
        declined.cancelled("payment_failed"),
        lapsed.created(),
        lapsed.expired(),
    )
    organizer = token("organizer", event.organizer_id)
    expected = figures(
        bookings_created=3,
        bookings_confirmed=1,
        bookings_cancelled=1,
        bookings_expired=1,
        tickets_sold=2,
        payments_succeeded=1,
        payments_failed=1,
        revenue={"EUR": "40.00"},
        net_revenue={"EUR": "40.00"},
        conversion="0.3333",
    )
    body = await report_when(client, organizer, lambda b: b["totals"] == expected)
    (row,) = body["events"]
    assert (row["event_id"], row["title"], row["currency"]) == (
        str(event.event_id),
        "PyCon Lisbon",
        "EUR",
    )
    assert only_figures(row) == expected
    assert datetime.fromisoformat(body["generated_at"]).tzinfo is not None

    # the paid booking is cancelled and refunded: gross revenue stays, refunds and net move
    await publish(paid.cancelled("user_request", refund_due=True), paid.refunded())
    expected |= dict(
        bookings_cancelled=2,
        tickets_cancelled=2,
        payments_refunded=1,
        refunds={"EUR": "40.00"},
        net_revenue={"EUR": "0.00"},
    )
    await report_when(client, organizer, lambda b: b["totals"] == expected)


async def test_the_same_message_published_twice_counts_once(client, publish, analytics):
    event = EventFacts()
    booking, sentinel = event.booking(3), event.booking(1)
    created, paid, confirmed = booking.created(), booking.paid(), booking.confirmed()
    await publish(event.created(), created, created, paid, paid, confirmed, confirmed)
    await publish(sentinel.created())  # published last: once it shows, the copies were handled
    organizer = token("organizer", event.organizer_id)
    body = await report_when(client, organizer, lambda b: b["totals"]["bookings_created"] >= 2)
    assert body["totals"] == one_paid_booking(3, "60.00", bookings_created=2, conversion="0.5000")


async def test_a_confirmation_arriving_before_its_hold_is_counted_once(client, publish):
    event = EventFacts()
    booking = event.booking(2)
    created = booking.created()  # occurred first, delivered last
    confirmed = booking.confirmed()
    retold = booking.confirmed()  # another message telling the same transition
    await publish(event.created(), confirmed, booking.paid(), created, retold)
    organizer = token("organizer", event.organizer_id)
    expected = one_paid_booking(2, "40.00")
    await report_when(client, organizer, lambda b: b["totals"] == expected)


async def test_organizers_see_only_their_events_and_admins_see_all(client, publish):
    mine, theirs = EventFacts(title="Mine"), EventFacts(title="Theirs", currency="USD")
    await publish(
        mine.created(),
        mine.booking().created(),
        theirs.created(),
        theirs.booking().created(),
        theirs.booking().created(),
    )
    admin = token("admin")
    both = {str(mine.event_id): 1, str(theirs.event_id): 2}

    def admin_sees_both(body: dict[str, Any]) -> bool:
        seen = {e["event_id"]: e["bookings_created"] for e in body["events"]}
        return all(seen.get(k) == v for k, v in both.items())

    body = await report_when(client, admin, admin_sees_both)  # admin: every organizer's events
    assert {"EUR", "USD"} <= set(body["totals"]["revenue"])

    me = token("organizer", mine.organizer_id)
    own = (await client.get("/analytics/report", headers=me)).json()
    assert [e["event_id"] for e in own["events"]] == [str(mine.event_id)]
    assert own["totals"]["bookings_created"] == 1 and own["totals"]["revenue"] == {"EUR": "0.00"}

    # somebody else's event is a 404 for an organizer, like an unknown one
    for event_id in (theirs.event_id, uuid.uuid4()):
        resp = await client.get("/analytics/report", params={"event_id": str(event_id)}, headers=me)
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("application/problem+json")
    resp = await client.get(
        "/analytics/report/daily", params={"event_id": str(theirs.event_id)}, headers=me
    )
    assert resp.status_code == 404

    one = await client.get(
        "/analytics/report", params={"event_id": str(theirs.event_id)}, headers=admin
    )
    assert [e["title"] for e in one.json()["events"]] == ["Theirs"]
    assert one.json()["totals"]["bookings_created"] == 2
    unknown = await client.get(
        "/analytics/report", params={"event_id": str(uuid.uuid4())}, headers=admin
    )
    assert unknown.status_code == 404

    nobody = (await client.get("/analytics/report", headers=token("organizer"))).json()
    assert nobody["events"] == [] and nobody["totals"]["bookings_created"] == 0
    for path in ("/analytics/report", "/analytics/report/daily"):
        assert (await client.get(path, headers=token("customer"))).status_code == 403
        assert (await client.get(path)).status_code == 401


async def test_from_to_and_event_id_filter_by_when_facts_occurred(client, publish):
    event = EventFacts()
    other = EventFacts(organizer_id=event.organizer_id)  # same organizer, second event
    three_days_ago = now() - timedelta(days=3)
    old, new = event.booking(), event.booking()
    await publish(
        event.created(),
        other.created(),
        other.booking().created(),
        old.created(occurred_at=three_days_ago),
        old.paid(occurred_at=three_days_ago + timedelta(minutes=1)),
        old.confirmed(occurred_at=three_days_ago + timedelta(minutes=2)),
        new.created(),
    )
    organizer = token("organizer", event.organizer_id)
    everything = await report_when(
        client, organizer, lambda b: b["totals"]["bookings_created"] == 3
    )
    assert everything["totals"]["bookings_confirmed"] == 1

    only = {"event_id": str(event.event_id)}
    recent = await report(
        client, organizer, {**only, "from": (now() - timedelta(days=1)).isoformat()}
    )
    assert recent["totals"] == figures(bookings_created=1, conversion="0.0000")
    assert [e["event_id"] for e in recent["events"]] == [str(event.event_id)]
    assert recent["filters"]["event_id"] == str(event.event_id)

    earlier = await report(
        client, organizer, {**only, "to": (now() - timedelta(days=2)).isoformat()}
    )
    assert earlier["totals"] == one_paid_booking(1, "20.00")
    window = await report(
        client,
        organizer,
        {
            "from": (three_days_ago + timedelta(seconds=30)).isoformat(),
            "to": (three_days_ago + timedelta(minutes=1, seconds=30)).isoformat(),
        },
    )
    assert window["totals"]["payments_succeeded"] == 1
    assert window["totals"]["bookings_created"] == window["totals"]["bookings_confirmed"] == 0


@pytest.mark.parametrize(
    ("params", "bad_field"),
    [
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "query.from"),
        ({"from": "2026-01-01T00:00:00"}, "query.from"),  # no time zone
        ({"to": "yesterday"}, "query.to"),
        # what pydantic takes but RFC 3339 (the document's `format: date-time`) does not
        ({"to": "2026-01-01 00:00:00Z"}, "query.to"),
        ({"to": "2026-01-01T00:00Z"}, "query.to"),
        ({"to": "2026-01-01T00:00:00+0000"}, "query.to"),
        ({"from": "1767225600"}, "query.from"),
        ({"event_id": "not-a-uuid"}, "query.event_id"),
    ],
)
async def test_bad_filters_are_422_problems(client, params, bad_field):
    for path in ("/analytics/report", "/analytics/report/daily"):
        resp = await client.get(path, params=params, headers=token("admin"))
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in resp.json()["errors"]] == [bad_field]


async def test_report_as_csv_has_one_row_per_event(client, publish):
    first = EventFacts(title="Alpha")
    second = EventFacts(organizer_id=first.organizer_id, title='Beta, "the sequel"')
    b = first.booking(2)
    await publish(first.created(), second.created(), b.created(), b.paid(), b.confirmed())
    organizer = token("organizer", first.organizer_id)
    json_body = await report_when(
        client,
        organizer,
        lambda body: body["totals"]["bookings_confirmed"] == 1 and len(body["events"]) == 2,
    )

    resp = await client.get("/analytics/report", headers={**organizer, "Accept": "text/csv"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["event_id"] for r in rows] == [e["event_id"] for e in json_body["events"]]
    by_title = {r["title"]: r for r in rows}
    assert set(by_title) == {"Alpha", 'Beta, "the sequel"'}
    alpha = by_title["Alpha"]
    assert (
        alpha["bookings_created"],
        alpha["tickets_sold"],
        alpha["revenue_EUR"],
        alpha["net_revenue_EUR"],
        alpha["conversion"],
    ) == ("1", "2", "40.00", "40.00", "1.0000")
    assert by_title['Beta, "the sequel"']["revenue_EUR"] == "0.00"

    # JSON stays the default and wins when preferred
    for accept in ("application/json", "*/*", "text/csv;q=0.5, application/json"):
        resp = await client.get("/analytics/report", headers={**organizer, "Accept": accept})
        assert resp.headers["content-type"] == "application/json", accept


async def test_report_csv_writes_formula_titles_as_text(client, publish):
    """A title a spreadsheet would run as a formula comes out as text (leading quote), so an
    organizer opening the export runs nothing; a negative net revenue stays a number."""
    titles = ['=HYPERLINK("http://x","click")', "-1+1", "@SUM(A1)", "+cmd"]
    first = EventFacts(title=titles[0])
    others = [EventFacts(organizer_id=first.organizer_id, title=t) for t in titles[1:]]
    refunded = first.booking(1)
    await publish(
        first.created(),
        *(e.created() for e in others),
        refunded.created(),
        refunded.paid(),
        refunded.confirmed(),
        refunded.refunded(),
    )
    organizer = token("organizer", first.organizer_id)
    await report_when(
        client,
        organizer,
        lambda body: len(body["events"]) == 4 and body["totals"]["payments_refunded"] == 1,
    )

    resp = await client.get("/analytics/report", headers={**organizer, "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert sorted(r["title"] for r in rows) == sorted("'" + t for t in titles)
    for r in rows:
        assert r["net_revenue_EUR"][:1] not in ("=", "+", "@", "'"), r


async def test_daily_series_has_every_day_with_its_figures(client, publish):
    event = EventFacts()
    midnight = datetime.combine(now().date(), time(), UTC)
    two_days_ago = midnight - timedelta(days=2) + timedelta(hours=12)
    old, today = event.booking(2), event.booking(1)
    await publish(
        event.created(),
        old.created(occurred_at=two_days_ago),
        old.paid(occurred_at=two_days_ago),
        old.confirmed(occurred_at=two_days_ago),
        today.created(),
    )
    organizer = token("organizer", event.organizer_id)
    params = {
        "event_id": str(event.event_id),
        "from": (midnight - timedelta(days=3)).isoformat(),
        "to": (midnight + timedelta(days=1)).isoformat(),
    }
    body = await report_when(
        client,
        organizer,
        lambda b: sum(d["bookings_created"] for d in b["days"]) == 2,
        path="/analytics/report/daily",
        **params,
    )
    days = {d["date"]: d for d in body["days"]}
    expected_dates = [(midnight.date() - timedelta(days=n)).isoformat() for n in (3, 2, 1, 0)]
    assert list(days) == expected_dates
    assert only_figures(days[expected_dates[1]]) == one_paid_booking(2, "40.00")
    assert only_figures(days[expected_dates[3]]) == figures(bookings_created=1, conversion="0.0000")
    assert (
        only_figures(days[expected_dates[0]]) == only_figures(days[expected_dates[2]]) == figures()
    )

    resp = await client.get(
        "/analytics/report/daily", params=params, headers={**organizer, "Accept": "text/csv"}
    )
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["date"] for r in rows] == expected_dates
    assert [r["tickets_sold"] for r in rows] == ["0", "2", "0", "0"]

    default = (await client.get("/analytics/report/daily", headers=organizer)).json()
    assert len(default["days"]) == 30 and default["days"][-1]["date"] == now().date().isoformat()
    too_long = await client.get(
        "/analytics/report/daily",
        headers=organizer,
        params={"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert too_long.status_code == 422
