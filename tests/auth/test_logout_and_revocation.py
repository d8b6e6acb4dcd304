"""Logging out revokes the token's whole rotation family; a password or role change (the
start-up admin step is where either happens) revokes every family of the user; the start-up
admin step never promotes an existing non-admin account."""

from __future__ import annotations

import logging

import pytest

from tests.auth.conftest import auth_client
from tests.auth.helpers import (
    STRONG_PASSWORD,
    assert_problem,
    db_rows,
    login,
    new_email,
    tokens_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def refresh(client, token: str):
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def test_logout_revokes_the_whole_rotation_family(client):
    user, first = await tokens_for(client)
    second = (await refresh(client, first["refresh_token"])).json()
    third = (await refresh(client, second["refresh_token"])).json()
    other = (await login(client, user["email"])).json()  # another session of the same user

    resp = await client.post("/auth/logout", json={"refresh_token": second["refresh_token"]})
    assert resp.status_code == 204 and resp.content == b""
    for token in (first, second, third):
        assert_problem(await refresh(client, token["refresh_token"]), 401)
    # Only that family: the other session still refreshes.
    assert (await refresh(client, other["refresh_token"])).status_code == 200
    # Idempotent.
    again = await client.post("/auth/logout", json={"refresh_token": third["refresh_token"]})
    assert again.status_code == 204


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
async def test_logout_with_an_unknown_token_is_204_and_changes_nothing(client, token):
    _, pair = await tokens_for(client)
    assert (await client.post("/auth/logout", json={"refresh_token": token})).status_code == 204
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_logout_with_an_access_token_revokes_nothing(client):
    _, pair = await tokens_for(client)
    resp = await client.post("/auth/logout", json={"refresh_token": pair["access_token"]})
    assert resp.status_code == 204
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_logout_with_a_malformed_body_is_a_client_error(client):
    assert_problem(await client.post("/auth/logout", json={}), 422)
    assert_problem(await client.post("/auth/logout", json={"refresh_token": 1, "x": 2}), 422)
    problem = assert_problem(await client.post("/auth/logout", json={"refresh_token": 12}), 422)
    assert [e["field"] for e in problem["errors"]] == ["body.refresh_token"]
    resp = await client.post(
        "/auth/logout", content=b"{", headers={"content-type": "application/json"}
    )
    assert_problem(resp, 400)


async def start(auth_app):
    from asgi_lifespan import LifespanManager

    async with LifespanManager(auth_app):
        pass


async def test_admin_password_reset_at_start_up_revokes_every_family(auth_app, settings):
    email = new_email("root")
    settings.ADMIN_EMAIL, settings.ADMIN_PASSWORD = email, "first-Admin-pass-1"
    await start(auth_app)
    async with auth_client(auth_app) as client:
        sessions = [(await login(client, email, "first-Admin-pass-1")).json() for _ in range(2)]
        settings.ADMIN_PASSWORD = "second-Admin-pass-2"
        await start(auth_app)
        for pair in sessions:
            assert_problem(await refresh(client, pair["refresh_token"]), 401)
        # An unchanged password at the next start revokes nothing.
        pair = (await login(client, email, "second-Admin-pass-2")).json()
        await start(auth_app)
        assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_start_up_never_promotes_an_existing_non_admin(auth_app, settings, caplog):
    async with auth_client(auth_app) as client:
        user, pair = await tokens_for(client)
        settings.ADMIN_EMAIL, settings.ADMIN_PASSWORD = user["email"].upper(), "attacker-Chosen-9"
        with caplog.at_level(logging.ERROR):
            await start(auth_app)  # the platform still starts
        assert any(
            r.levelno == logging.ERROR and "admin" in r.getMessage().lower() for r in caplog.records
        )
        assert await db_rows("SELECT role FROM users WHERE id = %s", user["id"]) == [("customer",)]
        assert_problem(await login(client, user["email"], "attacker-Chosen-9"), 401)
        assert (await login(client, user["email"], STRONG_PASSWORD)).status_code == 200
        assert (await refresh(client, pair["refresh_token"])).status_code == 200


@pytest.mark.parametrize("unset", ["ADMIN_EMAIL", "ADMIN_PASSWORD"])
async def test_no_admin_without_both_variables(auth_app, settings, unset):
    email = new_email("root")
    settings.ADMIN_EMAIL, settings.ADMIN_PASSWORD = email, "first-Admin-pass-1"
    setattr(settings, unset, None)
    await start(auth_app)
    assert await db_rows("SELECT count(*) FROM users WHERE role = 'admin'") == [(0,)]


async def _user_model(email: str):
    from asgiref.sync import sync_to_async

    from auth.accounts.models import User
    from auth.accounts.emails import canonical_or_none

    return await sync_to_async(User.objects.get)(email_canonical=canonical_or_none(email))


@pytest.mark.parametrize("change", ["password", "role"])
async def test_any_password_or_role_change_revokes_every_family(client, change):
    """However it happens (an operator's shell, the admin site, a future route), saving a new
    password or role logs every device out: it is the model's rule, not one caller's."""
    from asgiref.sync import sync_to_async

    user, first = await tokens_for(client)
    other = (await login(client, user["email"])).json()
    account = await _user_model(user["email"])
    if change == "password":
        account.set_password("a brand new long passphrase")
    else:
        account.role = "organizer"
    await sync_to_async(account.save)()
    for pair in (first, other):
        assert_problem(await refresh(client, pair["refresh_token"]), 401)


async def test_saving_other_fields_keeps_the_sessions(client):
    from asgiref.sync import sync_to_async

    user, pair = await tokens_for(client)
    account = await _user_model(user["email"])
    account.full_name = "Somebody Else"
    await sync_to_async(account.save)()
    assert (await refresh(client, pair["refresh_token"])).status_code == 200
