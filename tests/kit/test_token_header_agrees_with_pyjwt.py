"""Token verification reads the JOSE header with its own parse (``kit.security._unverified_header``,
one base64 and JSON decode of the first segment) instead of PyJWT's
``jwt.get_unverified_header``, which parses the whole token. The two must agree:

* wherever PyJWT reads a header, the kit reads the very same header;
* wherever the kit refuses a header, PyJWT refuses it too (the kit is never stricter);
* wherever PyJWT refuses, verification refuses: the kit's parse is more lenient (it does not
  count segments, and base64 skips characters outside its alphabet), but ``jwt.decode`` then
  parses the whole token strictly.

Hypothesis builds the token-ish strings: real signed tokens, headers of every JSON shape with
good and bad ``alg``/``kid``, junk in the base64, missing and extra segments.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kit.security import InvalidToken, TokenVerifier, _unverified_header
from tests.support.tokens import AUDIENCE, ISSUER, KID, jwks, mint


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# Minted at import, checked much later in a long run: valid for a day, not the default 5 min.
GOOD = mint(uuid.uuid4(), expires_in=86_400)
GOOD_HEADER, GOOD_PAYLOAD, GOOD_SIGNATURE = GOOD.split(".")


def with_header(header: bytes) -> str:
    return f"{b64(header)}.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
header_dicts = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "EdDSA", "HS256", "none", "rs256", 1]) | json_values,
        "kid": st.sampled_from([KID, "other-key", 7, None]) | json_values,
        "typ": st.sampled_from(["JWT", "at+jwt"]),
        "crit": st.lists(st.sampled_from(["exp", "b64", "x"]), max_size=2) | json_values,
        "b64": st.booleans(),
    },
).flatmap(
    lambda d: st.dictionaries(st.text(max_size=5), json_values, max_size=2).map(lambda x: x | d)
)
# characters of the base64url alphabet, its padding, the other alphabet's and plain junk
segment_chars = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/!. \té\x00"
)
header_segments = st.one_of(
    header_dicts.map(lambda d: b64(json.dumps(d).encode())),
    json_values.map(lambda v: b64(json.dumps(v).encode())),  # a header that is no object
    st.binary(max_size=24).map(b64),  # not JSON, or not UTF-8
    st.text(segment_chars, max_size=24),  # anything at all
    st.just(GOOD_HEADER),
)


@st.composite
def token_ish(draw: st.DrawFn) -> str:
    header = draw(header_segments)
    if draw(st.integers(0, 3)) == 0:  # junk or padding where base64 does not expect it
        at = draw(st.integers(0, len(header)))
        header = header[:at] + draw(st.text(segment_chars, min_size=1, max_size=3)) + header[at:]
    rest = draw(
        st.just([GOOD_PAYLOAD, GOOD_SIGNATURE])  # well formed but for the header
        | st.lists(
            st.sampled_from([GOOD_PAYLOAD, GOOD_SIGNATURE, ""])
            | st.text(segment_chars, max_size=8),
            max_size=3,
        )
    )
    return ".".join([header, *rest])


@pytest.fixture(scope="module")
def verify() -> Iterator[Any]:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks())
    loop = asyncio.new_event_loop()
    yield lambda token: loop.run_until_complete(verifier.verify(token))
    loop.close()


def read(parse: Any, token: str) -> tuple[bool, Any]:
    try:
        return True, parse(token)
    except (InvalidToken, jwt.PyJWTError) as exc:
        return False, exc


def test_a_good_token_has_the_same_header_both_ways(verify: Any) -> None:
    assert (
        _unverified_header(GOOD)
        == jwt.get_unverified_header(GOOD)
        == {
            "alg": "RS256",
            "kid": KID,
            "typ": "JWT",
        }
    )
    assert verify(GOOD).claims["aud"] == AUDIENCE


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=token_ish())
@example(token=GOOD)
@example(token=GOOD_HEADER)  # one segment only
@example(token=f"{GOOD_HEADER}==.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}")  # too much padding
@example(token=f"{GOOD_HEADER}!.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}")  # junk base64 skips
@example(token=with_header(b'{"alg":"RS256","kid":[1]}'))  # PyJWT wants a string kid
@example(token=with_header(b'{"alg":"RS256","kid":"test-key-1","crit":["x"]}'))
@example(token=with_header(b"[]"))  # not an object
@example(token=with_header(b'{"alg":"RS256"'))  # not JSON
@example(token=with_header(b"\xff\xfe"))  # not UTF-8
@example(token=with_header(b"[" * 100_000))  # too deep for JSON
@example(token="é" + GOOD)
def test_the_kits_header_parse_agrees_with_pyjwt(token: str, verify: Any) -> None:
    agree(token, verify)


@settings(max_examples=300, deadline=None)
@given(header=header_dicts)
def test_every_header_object_reads_the_same_both_ways(header: dict[str, Any], verify: Any) -> None:
    """Well-formed tokens but for their header: PyJWT reads most of them, so most compare."""
    agree(with_header(json.dumps(header).encode()), verify)


def agree(token: str, verify: Any) -> None:
    ours_ok, ours = read(_unverified_header, token)
    theirs_ok, theirs = read(jwt.get_unverified_header, token)
    if theirs_ok:
        assert ours_ok and ours == theirs
    if not ours_ok:
        assert not theirs_ok
    if not theirs_ok:
        with pytest.raises(InvalidToken):
            verify(token)
