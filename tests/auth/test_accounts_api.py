"""Register, log in, refresh, /me, JWKS and the problem-details errors of the auth service."""

from __future__ import annotations

import uuid

import pytest

from tests.auth.helpers import (
    STRONG_PASSWORD,
    assert_problem,
    bearer,
    db_rows,
    login,
    new_email,
    register,
    tokens_for,
    unverified_parts,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def test_register_login_me_round_trip(client):
    email = new_email("Ada")
    resp = await client.post(
        "/auth/register",
        json={
            "email": email,
            "password": STRONG_PASSWORD,
            "full_name": "Ada Lovelace",
            "role": "organizer",
        },
    )
    assert resp.status_code == 201, resp.text
    user = resp.json()
    assert set(user) >= {"id", "email", "full_name", "role", "created_at"}
    assert (user["email"], user["full_name"], user["role"]) == (email, "Ada Lovelace", "organizer")
    assert uuid.UUID(user["id"]) and user["created_at"].endswith("Z")
    (stored_hash,) = (await db_rows("SELECT password FROM users WHERE id = %s", user["id"]))[0]
    assert stored_hash.startswith("argon2$argon2id$")

    resp = await login(client, email.upper())  # e-mail addresses are case-insensitive
    assert resp.status_code == 200, resp.text
    pair = resp.json()
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    header, claims = unverified_parts(pair["access_token"])
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["sub"] == user["id"] and claims["role"] == "organizer"
    assert claims["token_type"] == "access"
    assert (claims["iss"], claims["aud"]) == ("eventbooking-auth", "eventbooking")
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    _, refresh_claims = unverified_parts(pair["refresh_token"])
    assert refresh_claims["token_type"] == "refresh"
    assert refresh_claims["exp"] - refresh_claims["iat"] == 14 * 24 * 3600

    me = await client.get("/auth/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200 and me.json() == user


async def test_jwks_publishes_the_key_that_signs_tokens(client):
    _, pair = await tokens_for(client)
    resp = await client.get("/auth/jwks.json")
    assert resp.status_code == 200
    keys = resp.json()["keys"]
    kid = unverified_parts(pair["access_token"])[0]["kid"]
    (key,) = [k for k in keys if k["kid"] == kid]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert "d" not in key and "p" not in key  # public parts only


async def test_duplicate_email_is_409_and_writes_nothing(client):
    user = await register(client)
    outbox_before = await db_rows("SELECT count(*) FROM outbox")
    resp = await client.post(
        "/auth/register", json={"email": user["email"].upper(), "password": STRONG_PASSWORD}
    )
    problem = assert_problem(resp, 409)
    assert problem["type"].endswith("/email-taken")
    assert await db_rows(
        "SELECT count(*) FROM users WHERE lower(email) = lower(%s)", user["email"]
    ) == [(1,)]
    assert await db_rows("SELECT count(*) FROM outbox") == outbox_before


@pytest.mark.parametrize(
    ("password", "error_type"),
    [
        ("short1!", "password_too_short"),
        ("password123", "password_too_common"),
        ("83920174652", "password_entirely_numeric"),
        ("ada.lovelace.example", "password_too_similar"),
    ],
)
async def test_weak_password_is_422_naming_the_field(client, password, error_type):
    email = "ada.lovelace@example.com"
    resp = await client.post(
        "/auth/register", json={"email": email, "password": password, "full_name": "Ada Lovelace"}
    )
    problem = assert_problem(resp, 422)
    assert {(e["field"], e["type"]) for e in problem["errors"]} >= {("body.password", error_type)}
    assert await db_rows("SELECT count(*) FROM users") == [(0,)]


async def test_nobody_registers_as_admin(client):
    resp = await client.post(
        "/auth/register", json={"email": new_email(), "password": STRONG_PASSWORD, "role": "admin"}
    )
    problem = assert_problem(resp, 422)
    assert [e["field"] for e in problem["errors"]] == ["body.role"]
    assert await db_rows("SELECT count(*) FROM users") == [(0,)]


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        ({"password": STRONG_PASSWORD}, {"body.email"}),
        ({"email": "not-an-email", "password": STRONG_PASSWORD}, {"body.email"}),
        ({"email": "a@example.com"}, {"body.password"}),
        ({"email": "a@example.com", "password": STRONG_PASSWORD, "role": "king"}, {"body.role"}),
        ({"email": "a@example.com", "password": STRONG_PASSWORD, "phone": "12"}, {"body.phone"}),
        (
            {"email": "a@example.com", "password": STRONG_PASSWORD, "is_admin": True},
            {"body.is_admin"},
        ),
        (
            {"email": "a@example.com", "password": STRONG_PASSWORD, "full_name": "x" * 201},
            {"body.full_name"},
        ),
        (["not", "an", "object"], {"body"}),
        # the schema says string: a number is not turned into one (found by deep fuzzing)
        ({"email": "a@example.com", "password": 12345678901234}, {"body.password"}),
        (
            {"email": "a@example.com", "password": STRONG_PASSWORD, "full_name": 7},
            {"body.full_name"},
        ),
        (
            {"email": "a@example.com", "password": STRONG_PASSWORD, "phone": 4930123456},
            {"body.phone"},
        ),
    ],
)
async def test_invalid_registration_is_422_with_each_bad_field(client, body, bad_fields):
    problem = assert_problem(await client.post("/auth/register", json=body), 422)
    assert {e["field"] for e in problem["errors"]} == bad_fields
    assert all(e["message"] and e["type"] for e in problem["errors"])


async def test_client_mistakes_get_problem_details_never_500(client):
    resp = await client.post(
        "/auth/login", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert assert_problem(resp, 400)["type"].endswith("/malformed-json")
    resp = await client.post(
        "/auth/login",
        content=b"email=a",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(resp, 415)
    assert_problem(await client.get("/auth/nope"), 404)
    assert_problem(await client.get("/auth/register"), 405)
    assert_problem(await client.post("/auth/login", json={"email": "a@example.com"}), 422)
    big = {"email": "a@example.com", "password": "x" * (2 * 1024 * 1024)}
    assert (await client.post("/auth/login", json=big)).status_code in (413, 422)


async def test_wrong_password_and_unknown_account_look_the_same(client):
    user = await register(client)
    wrong = await login(client, user["email"], "not-the-password-1")
    unknown = await login(client, new_email(), "not-the-password-1")
    assert assert_problem(wrong, 401) == {**assert_problem(unknown, 401)}


async def test_refresh_rotates_and_a_reused_token_revokes_its_family(client):
    user, first = await tokens_for(client)

    resp = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    me = await client.get("/auth/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == user["id"]

    # The consumed token comes back (stolen copy): 401, and the family is revoked...
    reuse = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert assert_problem(reuse, 401)["type"].endswith("/invalid-refresh-token")
    # ...so the legitimate latest refresh token is dead too.
    latest = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert_problem(latest, 401)
    # Another login (another family) is unaffected.
    other = (await login(client, user["email"])).json()
    assert (
        await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status_code == 200


async def test_only_refresh_tokens_refresh(client):
    _, pair = await tokens_for(client)
    for token in (pair["access_token"], "garbage", pair["refresh_token"][:-4] + "AAAA"):
        assert_problem(await client.post("/auth/refresh", json={"refresh_token": token}), 401)
    assert_problem(await client.post("/auth/refresh", json={}), 422)


async def test_me_needs_a_token(client):
    resp = await client.get("/auth/me")
    assert_problem(resp, 401)
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await client.get("/auth/me", headers={"Authorization": "Basic abc"}), 401)


async def test_health_and_ready(client):
    assert (await client.get("/health")).json() == {"status": "ok", "service": "auth"}
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    spec = (await client.get("/asyncapi.json")).json()
    assert spec["asyncapi"] == "3.0.0" and spec["channels"]["user_registered"]["address"] == (
        "user_registered"
    )
    assert "auth_send_user_registered" in spec["operations"]


async def test_admin_is_bootstrapped_at_start_up_idempotently(auth_app, settings):
    from asgi_lifespan import LifespanManager

    from tests.auth.conftest import auth_client

    settings.ADMIN_EMAIL, settings.ADMIN_PASSWORD = "root@example.com", "first-Admin-pass-1"
    async with LifespanManager(auth_app):
        pass
    settings.ADMIN_PASSWORD = "second-Admin-pass-2"  # a changed secret is applied
    async with LifespanManager(auth_app), auth_client(auth_app) as client:
        assert await db_rows("SELECT role FROM users WHERE email = %s", "root@example.com") == [
            ("admin",)
        ]
        assert (await login(client, "root@example.com", "first-Admin-pass-1")).status_code == 401
        resp = await login(client, "root@example.com", "second-Admin-pass-2")
        assert resp.status_code == 200, resp.text
        assert unverified_parts(resp.json()["access_token"])[1]["role"] == "admin"
