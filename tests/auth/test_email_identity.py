"""One account per e-mail address: every look-alike spelling of a registered address is refused
(409 or 422), never a second account, and every case variant of an ASCII address logs in to the
one account (PostgreSQL's C.UTF-8 says UPPER('ı') = 'I', which once let ``admın@`` sit beside
``admin@``)."""

from __future__ import annotations

import uuid

import pytest

from tests.auth.helpers import STRONG_PASSWORD, assert_problem, db_rows, login, unverified_parts

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def local_part() -> str:
    """Unique, with an ``a``, an ``i`` and an ``s`` to make look-alikes of."""
    return f"admins{uuid.uuid4().int % 10**10}"


async def post_register(client, email: str):
    return await client.post("/auth/register", json={"email": email, "password": STRONG_PASSWORD})


@pytest.mark.parametrize(
    "variant",
    [
        lambda lp: lp.replace("i", "\u0131") + "@example.com",  # dotless i: UPPER() gives I
        lambda lp: lp.upper() + "@example.com",
        lambda lp: lp + "@EXAMPLE.com",
        lambda lp: lp.replace("a", "\uff41") + "@example.com",  # fullwidth a
        lambda lp: lp + "@\uff45xample.com",  # fullwidth e in the domain: IDNA maps it to e
        lambda lp: lp.replace("s", "\u017f") + "@example.com",  # long s: UPPER() gives S
    ],
    ids=[
        "dotless-i",
        "upper-local",
        "upper-domain",
        "fullwidth-local",
        "fullwidth-domain",
        "long-s",
    ],
)
async def test_a_look_alike_address_never_makes_a_second_account(client, variant):
    lp = local_part()
    assert (await post_register(client, f"{lp}@example.com")).status_code == 201
    resp = await post_register(client, variant(lp))
    assert resp.status_code in (409, 422), resp.text
    problem = assert_problem(resp, resp.status_code)
    if resp.status_code == 422:
        assert [e["field"] for e in problem["errors"]] == ["body.email"]
    digits = lp.removeprefix("admins")
    assert await db_rows("SELECT count(*) FROM users WHERE email LIKE %s", f"%{digits}%") == [(1,)]


async def test_non_ascii_local_part_is_refused_with_422(client):
    resp = await post_register(client, "jürgen@example.com")
    problem = assert_problem(resp, 422)
    assert problem["errors"][0]["field"] == "body.email"


async def test_an_internationalised_domain_is_stored_ascii(client):
    resp = await post_register(client, f"{local_part()}@Bücher.de")
    assert resp.status_code == 201, resp.text
    assert resp.json()["email"].endswith("@xn--bcher-kva.de")


async def test_every_case_variant_of_an_ascii_address_logs_in_to_the_one_account(client):
    lp = local_part()
    resp = await post_register(client, f"{lp}@example.com")
    user_id = resp.json()["id"]
    for variant in (f"{lp.upper()}@EXAMPLE.COM", f"{lp}@Example.Com", f"  {lp}@example.com "):
        resp = await login(client, variant)
        assert resp.status_code == 200, (variant, resp.text)
        assert unverified_parts(resp.json()["access_token"])[1]["sub"] == user_id
    # A look-alike never reaches the account (nor a 500).
    assert_problem(await login(client, lp.replace("i", "\u0131") + "@example.com"), 401)


async def test_a_look_alike_row_left_by_the_old_code_cannot_be_logged_into(client):
    """Rows written before canonical addresses existed: the migration gives a non-ASCII one a
    canonical form that no accepted input produces, so a lookup still finds only one account."""
    lp = local_part()
    assert (await post_register(client, f"{lp}@example.com")).status_code == 201
    await db_rows(
        "INSERT INTO users (id, password, email, email_canonical, full_name, role, is_active,"
        " created_at) VALUES (%s, 'x', %s, %s, '', 'customer', true, now())",
        uuid.uuid4(),
        lp.replace("i", "\u0131") + "@example.com",
        lp.replace("i", "\u0131") + "@example.com",
    )
    assert (await login(client, f"{lp}@example.com")).status_code == 200
