"""The outbox publisher's own AMQP content-header encoding is byte for byte pamqp's (the
library aiormq, aio-pika and FastStream use to write and read frames)."""

from __future__ import annotations

from datetime import UTC, datetime

import pamqp.frame
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp import commands as amqp
from pamqp.header import ContentHeader

from kit.messaging import content_header_frame


def short_strings() -> st.SearchStrategy[str]:
    return st.text(max_size=60)  # up to 240 UTF-8 bytes: within a short string's 255


header_values = st.one_of(
    st.text(max_size=300), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(),
)


@given(
    channel=st.integers(1, 2047),
    body_size=st.integers(0, 2**40),
    content_type=short_strings(),
    headers=st.dictionaries(st.text(max_size=32), header_values, max_size=5),  # keys <= 128 B
    delivery_mode=st.sampled_from([1, 2]),
    correlation_id=short_strings(),
    message_id=short_strings(),
    timestamp=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    message_type=st.none() | short_strings(),
    app_id=st.none() | short_strings(),
)
def test_content_header_is_what_pamqp_marshals(
    channel, body_size, content_type, headers, delivery_mode, correlation_id, message_id,
    timestamp, message_type, app_id,
) -> None:
    ours = content_header_frame(
        channel, body_size, content_type=content_type, headers=headers,
        delivery_mode=delivery_mode, correlation_id=correlation_id, message_id=message_id,
        timestamp=timestamp, message_type=message_type, app_id=app_id,
    )
    properties = amqp.Basic.Properties(
        content_type=content_type, headers=dict(headers), delivery_mode=delivery_mode,
        correlation_id=correlation_id, message_id=message_id, timestamp=timestamp,
        message_type=message_type, app_id=app_id,
    )
    assert ours == pamqp.frame.marshal(ContentHeader(0, body_size, properties), channel)

    # and pamqp reads back what we meant
    _, _, frame = pamqp.frame.unmarshal(ours)
    assert frame.body_size == body_size
    assert (frame.properties.message_id or "") == message_id
    assert (frame.properties.headers or {}) == headers


@pytest.mark.parametrize(("message_id", "headers", "limit"), [
    ("é" * 128, {}, 255),  # 256 bytes
    ("m", {"k" * 129: "v"}, 128),  # pamqp would silently truncate the field name
])
def test_what_does_not_fit_a_short_string_is_refused(message_id, headers, limit) -> None:
    with pytest.raises(ValueError, match=f"longer than {limit} bytes"):
        content_header_frame(
            1, 10, content_type="application/json", headers=headers, delivery_mode=2,
            correlation_id="c", message_id=message_id, timestamp=datetime.now(UTC),
            message_type=None, app_id=None,
        )
