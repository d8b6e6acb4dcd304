"""Rotating the signing key: tokens signed with the old key keep working everywhere (auth itself,
and a service verifying with the kit against the JWKS auth serves) until the old key is taken
out, whether the kids were chosen (``JWT_KEY_ID``) or left to the keys' thumbprints; bad
key settings stop the service at start-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ImproperlyConfigured

from auth.accounts.keys import build_key_ring, key_ring, thumbprint
from auth.accounts.tokens import access_verifier
from kit.security import TokenVerifier
from tests.auth.helpers import bearer, tokens_for, unverified_parts
from tests.support.serving import serve

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def private_pem(path: Path, key: Any = None) -> Path:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def public_pem(private: Path) -> Path:
    """The public half of a key file, as an operator keeps it after a rotation."""
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    path = private.with_suffix(".pub")
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def restart_auth(settings: Any) -> Iterator[Callable[..., None]]:
    """Gives auth new JWT_* settings the way a restart does: the key ring is built again (at
    start-up, as ``auth.core.startup`` does); the run's own keys come back afterwards."""

    def restart(**jwt: Any) -> None:
        for name, value in jwt.items():
            setattr(settings, name, value)
        key_ring.cache_clear()
        access_verifier.cache_clear()
        key_ring()

    yield restart
    key_ring.cache_clear()
    access_verifier.cache_clear()


def thumbprint_of(pem: Path) -> str:
    return thumbprint(serialization.load_pem_private_key(pem.read_bytes(), None).public_key())


@pytest.mark.parametrize(
    ("old_kid", "new_kid"),
    [("2026-11", "2026-12"), (None, "2026-12"), ("2026-11", None), (None, None)],
    ids=["key-ids", "thumbprint-then-key-id", "key-id-then-thumbprint", "thumbprints"],
)
async def test_tokens_signed_before_a_rotation_still_verify_after_it(
    auth_app, client, restart_auth, tmp_path, old_kid, new_kid
):
    old, new = private_pem(tmp_path / "old.pem"), private_pem(tmp_path / "new.pem")
    restart_auth(JWT_PRIVATE_KEY_FILE=str(old), JWT_KEY_ID=old_kid, JWT_EXTRA_PUBLIC_KEYS=[])
    user, before = await tokens_for(client)
    assert unverified_parts(before["access_token"])[0]["kid"] == (old_kid or thumbprint_of(old))

    async with serve(auth_app, lifespan="off") as url:
        # a service that has been verifying with the old key set all along
        running = TokenVerifier(
            issuer="eventbooking-auth",
            audience="eventbooking",
            jwks_url=f"{url}/auth/jwks.json",
            refresh_interval=0,
        )
        assert str((await running.verify(before["access_token"])).user_id) == user["id"]

        # The rotation: the new key signs; the old one only verifies, under the kid its tokens
        # carry (named when it was chosen, its thumbprint otherwise).
        entry = f"{old_kid}={public_pem(old)}" if old_kid else str(public_pem(old))
        restart_auth(
            JWT_PRIVATE_KEY_FILE=str(new), JWT_KEY_ID=new_kid, JWT_EXTRA_PUBLIC_KEYS=[entry]
        )

        jwks = (await client.get("/auth/jwks.json")).json()
        kids = [new_kid or thumbprint_of(new), old_kid or thumbprint_of(old)]
        assert [k["kid"] for k in jwks["keys"]] == kids

        # auth itself takes the old access and refresh tokens; what it issues now is the new key's
        me = await client.get("/auth/me", headers=bearer(before["access_token"]))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user["id"]
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": before["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        after = refreshed.json()
        assert unverified_parts(after["access_token"])[0]["kid"] == kids[0]

        # A service started after the rotation, and the one running through it, take both. The
        # new token first: its unknown kid makes the running one fetch the JWKS again (which
        # also empties its cache of verified tokens), so the old token is checked afresh.
        started_after = TokenVerifier(
            issuer="eventbooking-auth", audience="eventbooking", jwks_url=f"{url}/auth/jwks.json"
        )
        for verifier in (started_after, running):
            for token in (after["access_token"], before["access_token"]):
                assert str((await verifier.verify(token)).user_id) == user["id"]


# --- start-up refuses bad key settings --------------------------------------------------------


def ring(tmp_path: Path, *extra: str, key_id: str | None = "2026-12", key: Any = None) -> Any:
    return build_key_ring(
        private_key_pem=None,
        private_key_file=str(private_pem(tmp_path / "signing.pem", key)),
        key_id=key_id,
        extra_public_key_files=list(extra),
        generate_in=None,
    )


@pytest.mark.parametrize(
    "key_id", ["2026/11", "2026.11", "key id", "é", "k" * 65, "2026-11\n", "a=b"]
)
def test_a_key_id_outside_the_platforms_form_stops_start_up(tmp_path, key_id):
    old = public_pem(private_pem(tmp_path / "old.pem"))
    with pytest.raises(ImproperlyConfigured, match="JWT_KEY_ID"):
        ring(tmp_path, key_id=key_id)
    if key_id.strip() == key_id:  # spaces around an entry's parts are left out, as around entries
        with pytest.raises(ImproperlyConfigured, match="JWT_EXTRA_PUBLIC_KEYS entry"):
            ring(tmp_path, f"{key_id}={old}")


def test_an_unusable_extra_public_key_entry_stops_start_up(tmp_path):
    old = public_pem(private_pem(tmp_path / "old.pem"))
    (tmp_path / "junk.pem").write_text("not a key")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for entry in (
        f"={old}",
        "2026-11=",
        "2026-11=" + str(tmp_path / "missing.pem"),
        str(tmp_path / "missing.pem"),
        str(tmp_path / "junk.pem"),
        str(tmp_path),
        str(public_pem(private_pem(tmp_path / "small.pem", small))),
    ):
        with pytest.raises(ImproperlyConfigured, match="JWT_EXTRA_PUBLIC_KEYS entry") as refused:
            ring(tmp_path, entry)
        assert repr(entry) in str(refused.value)


def test_one_key_id_for_two_keys_stops_start_up(tmp_path):
    one = public_pem(private_pem(tmp_path / "one.pem"))
    two = public_pem(private_pem(tmp_path / "two.pem", ed25519.Ed25519PrivateKey.generate()))
    with pytest.raises(ImproperlyConfigured, match="already names the signing key"):
        ring(tmp_path, f"2026-12={one}")
    with pytest.raises(ImproperlyConfigured, match="already names another entry's key"):
        ring(tmp_path, f"2026-11={one}", f"2026-11={two}")


def test_the_same_key_under_the_same_key_id_again_is_published_once(tmp_path):
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    current = public_pem(private_pem(tmp_path / "current.pem", signing))
    old = public_pem(private_pem(tmp_path / "old.pem"))
    keys = ring(tmp_path, f"2026-12={current}", f"2026-11={old}", f"2026-11={old}", key=signing)
    assert [k["kid"] for k in keys.jwks()["keys"]] == ["2026-12", "2026-11"]
    # the current key by path too: also under its thumbprint (tokens signed before it had a kid)
    keys = ring(tmp_path, str(current), key=signing)
    assert [k["kid"] for k in keys.jwks()["keys"]] == ["2026-12", thumbprint(signing.public_key())]


def test_a_key_published_before_it_signs_keeps_its_kid_through_the_rollout(tmp_path):
    old_key, new_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "on"
    )
    old, new = (
        private_pem(tmp_path / "old.pem", old_key),
        private_pem(tmp_path / "new.pem", new_key),
    )
    announced = ring(tmp_path, f"2026-12={public_pem(new)}", key_id="2026-11", key=old_key)
    switched = ring(tmp_path, f"2026-11={public_pem(old)}", key_id="2026-12", key=new_key)
    # replicas on either step publish the same two keys under the same two kids
    assert announced.signing.kid == "2026-11" and switched.signing.kid == "2026-12"
    by_kid = lambda keys: {k["kid"]: k for k in keys.jwks()["keys"]}  # noqa: E731
    assert by_kid(announced) == by_kid(switched)
