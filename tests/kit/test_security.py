"""The kit's token verifier: the cache of verified tokens never outlives the key set."""

from __future__ import annotations

import uuid

import pytest

from kit.security import InvalidToken, TokenVerifier
from tests.support.tokens import AUDIENCE, ISSUER, jwks, mint, other_private_key


def verifier() -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks())


async def test_a_verified_token_is_served_from_cache_with_the_same_principal():
    v = verifier()
    user = uuid.uuid4()
    token = mint(user, "organizer")
    first = await v.verify(token)
    second = await v.verify(token)
    assert first is second and first.user_id == user and first.role == "organizer"


async def test_rotating_the_key_set_drops_cached_tokens():
    v = verifier()
    token = mint(uuid.uuid4())
    await v.verify(token)
    v._load({"keys": []})  # noqa: SLF001 - the key was withdrawn from the JWKS
    with pytest.raises(InvalidToken):
        await v.verify(token)


async def test_bad_tokens_are_never_cached():
    v = verifier()
    forged = mint(uuid.uuid4(), key=other_private_key())
    for _ in range(2):
        with pytest.raises(InvalidToken):
            await v.verify(forged)
    with pytest.raises(InvalidToken):
        await v.verify(mint(uuid.uuid4(), token_type="refresh"))
    assert len(v._verified) == 0  # noqa: SLF001
