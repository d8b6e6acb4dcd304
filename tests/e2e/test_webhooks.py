"""An organizer's webhook through the gateway, every service a real process: registered with a
secret shown once, it receives the signed `booking_confirmed` of a booking paid for their event,
and the delivery shows in its log."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.test_platform_flows import booked, create_event, paid
from tests.notifications.webhook_receiver import Receiver
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_an_organizer_receives_a_signed_booking_confirmed(platform, api):
    receiver = Receiver(port=platform.webhook_port)
    await receiver.start()
    try:
        _, _, organizer = await api.user("organizer")
        _, _, customer = await api.user("customer")
        event = await create_event(api, organizer, capacity=5, price="20.00")
        status, hook, _ = await api.call(
            "POST",
            "/notifications/webhooks",
            organizer,
            json={"url": receiver.url("hooks"), "events": ["booking_confirmed"]},
        )
        assert status == 201, hook
        assert hook["secret"].startswith("whsec_") and hook["events"] == ["booking_confirmed"]
        status, problem, _ = await api.call(
            "POST",
            "/notifications/webhooks",
            organizer,
            json={"url": "http://169.254.169.254/", "events": ["booking_confirmed"]},
        )
        assert status == 422 and problem["type"].endswith("/url-not-allowed"), problem

        booking = await booked(api, customer, event["id"], 2)
        await paid(api, customer, booking["id"])

        [request] = await eventually(lambda: receiver.at("hooks"), timeout=20)
        payload = Webhook(hook["secret"]).verify(request.body, request.headers)
        assert payload["type"] == "booking_confirmed"
        assert payload["data"]["booking_id"] == booking["id"]
        assert payload["data"]["event_id"] == event["id"]
        assert payload["data"]["amount"] == "40.00"

        async def log():
            return (
                await api.call("GET", f"/notifications/webhooks/{hook['id']}/deliveries", organizer)
            )[1]

        page = await eventually(
            log, until=lambda p: p["items"] and p["items"][0]["status"] == "delivered"
        )
        [delivery] = page["items"]
        assert delivery["webhook_id"] == request.headers["webhook-id"]
        assert [a["status_code"] for a in delivery["attempts"]] == [204]
        status, _, _ = await api.call(
            "GET", f"/notifications/webhooks/{hook['id']}/deliveries", customer
        )
        assert status == 403
    finally:
        await receiver.stop()
