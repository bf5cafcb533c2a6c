"""``Accounts`` against a real store: what changes, what is signed out, what is audited."""

from __future__ import annotations

import time
import urllib.parse

import pytest

from propdev.accounts import (
    CODE_ATTEMPTS,
    RESET_CODE_TTL,
    InvalidCodeError,
    InvalidFieldError,
    SessionNotFoundError,
    TooManyAttemptsError,
    WeakPasswordError,
    WrongPasswordError,
)
from propdev.management import SessionCutoffs
from propdev.management.residents import Residents
from propdev.registry import InProcessBus, Revocations
from propdev.security import create_user, current_code, verify_password
from propdev.security.errors import LoginFailedError
from propdev.security.users import authenticate
from propdev.staff import Role, Scope, Staff
from tests.unit.accounts.conftest import PASSWORD, TOKEN_TTL, World

NEW = "a brand new passphrase"


async def password_is(world: World, password: str, user_id: str | None = None) -> bool:
    row = await world.db.fetch_one(
        "SELECT password_hash FROM users WHERE id = :id", id=user_id or world.rita
    )
    assert row is not None
    return verify_password(str(row["password_hash"]), password)


async def reset_code(world: World) -> str:
    await world.accounts.request_reset({"username": "Rita"})
    await world.accounts.settle()
    assert world.outbox.sent, "no reset code was sent"
    return world.outbox.sent[-1].code


# -- password change ---------------------------------------------------------------------------


async def test_changing_the_password_signs_out_every_other_session_and_keeps_this_one(
    world: World,
) -> None:
    for family in ("here", "phone", "tablet"):
        await world.add_session(family)
    signed_out = await world.accounts.change_password(
        world.rita, "here", {"current_password": PASSWORD, "new_password": NEW}
    )
    assert signed_out == 2
    assert await password_is(world, NEW)
    assert await world.live_families() == {"here"}
    until = world.clock() + TOKEN_TTL
    assert sorted(world.revoked) == [("phone", until), ("tablet", until)]
    [entry] = await world.audit("account.password_change")
    assert entry == {
        "actor": f"user:{world.rita}",
        "action": "account.password_change",
        "subject": world.rita,
        "reason": "sessions_signed_out=2",
    }


async def test_a_wrong_current_password_changes_nothing(world: World) -> None:
    await world.add_session("phone")
    with pytest.raises(WrongPasswordError):
        await world.accounts.change_password(
            world.rita, "here", {"current_password": "not-it-at-all", "new_password": NEW}
        )
    assert await password_is(world, PASSWORD)
    assert await world.live_families() == {"phone"}
    assert world.revoked == [] and await world.audit("account.password_change") == []
    assert await world.refusals("account.password_change") == [  # never the password tried
        (f"user:{world.rita}", world.rita, "bad_password", None)
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD, "new_password": "password1"},
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD, "new_password": "RITA"},
    ],
)
async def test_a_weak_new_password_changes_nothing(world: World, body: dict[str, str]) -> None:
    await world.add_session("phone")
    with pytest.raises(WeakPasswordError):
        await world.accounts.change_password(world.rita, "here", body)
    assert await password_is(world, PASSWORD)
    assert await world.live_families() == {"phone"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"current_password": PASSWORD, "new_password": NEW, "extra": 1}, "extra"),
        ({"current_password": PASSWORD}, "new_password"),
        ({"current_password": 5, "new_password": NEW}, "current_password"),
        (["not", "an", "object"], "body"),
    ],
)
async def test_unknown_missing_or_mistyped_fields_are_refused(
    world: World, body: object, field: str
) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        await world.accounts.change_password(world.rita, "here", body)
    assert caught.value.field == field
    assert await password_is(world, PASSWORD)


async def test_wrong_current_passwords_are_throttled_like_sign_ins(world: World) -> None:
    body = {"current_password": "guess-guess", "new_password": NEW}
    for _ in range(5):  # the (account, address) pair's free failures
        with pytest.raises(WrongPasswordError):
            await world.accounts.change_password(world.rita, None, body, remote="10.0.0.9")
    with pytest.raises(TooManyAttemptsError):
        await world.accounts.change_password(
            world.rita, None, {**body, "current_password": PASSWORD}, remote="10.0.0.9"
        )
    assert await password_is(world, PASSWORD)
    address = {"address": "10.0.0.9"}
    assert [r[2:] for r in await world.refusals("account.password_change")] == [
        *[("bad_password", address)] * 5,
        ("throttled", address),
    ]


# -- sessions ----------------------------------------------------------------------------------


async def test_sessions_are_one_per_family_with_first_and_last_use(world: World) -> None:
    await world.add_session("phone")
    started = world.clock()
    world.clock.advance(60)
    await world.add_session("tablet")
    world.clock.advance(60)
    await world.add_session("phone")  # a refresh: the same family, a newer token
    await world.db.execute(
        "UPDATE oauth_refresh_tokens SET rotated = TRUE WHERE family_id = 'phone'"
        " AND issued_at = :t",
        t=started,
    )
    found = await world.accounts.sessions(world.rita)
    assert [(s.id, s.created_at, s.last_used_at) for s in found] == [
        ("phone", started, started + 120),
        ("tablet", started + 60, started + 60),
    ]
    assert [s.to_json("tablet")["current"] for s in found] == [False, True]


async def test_ending_a_session_revokes_its_family_and_another_users_session_is_not_found(
    world: World,
) -> None:
    other = await create_user(world.db, username="oleg", password="x" * 12, roles=["resident"])
    await world.add_session("olegs", user_id=other)
    await world.add_session("phone")
    with pytest.raises(SessionNotFoundError):
        await world.accounts.end_session(world.rita, "olegs")
    assert await world.live_families(other) == {"olegs"}
    await world.accounts.end_session(world.rita, "phone")
    assert await world.live_families() == set()
    assert [s for s, _ in world.revoked] == ["phone"]
    assert await world.accounts.sessions(world.rita) == []
    await world.accounts.end_session(world.rita, "phone")  # ended already: fine
    [entry, _] = await world.audit("account.session_revoke")
    assert (entry["subject"], entry["reason"]) == (world.rita, "session=phone")


# -- password reset ----------------------------------------------------------------------------


async def test_a_reset_code_sets_the_password_once_and_signs_out_every_session(
    world: World,
) -> None:
    await world.add_session("phone")
    code = await reset_code(world)
    [message] = world.outbox.sent
    assert (message.user_id, message.phone, message.purpose) == (
        world.rita,
        "+79990000001",
        "password_reset",
    )
    assert len(code) == 8 and code.isdigit() and code in message.text
    await world.accounts.confirm_reset({"username": "rita", "code": code, "new_password": NEW})
    assert await password_is(world, NEW)
    assert await world.live_families() == set()
    assert [s for s, _ in world.revoked] == ["phone"]
    [entry] = await world.audit("account.password_reset")
    assert (entry["subject"], entry["actor"]) == (world.rita, f"user:{world.rita}")
    with pytest.raises(InvalidCodeError):  # once
        await world.accounts.confirm_reset(
            {"username": "rita", "code": code, "new_password": "yet another passphrase"}
        )
    assert await password_is(world, NEW)


async def test_a_reset_code_expires(world: World) -> None:
    code = await reset_code(world)
    world.clock.advance(RESET_CODE_TTL + 1)
    with pytest.raises(InvalidCodeError):
        await world.accounts.confirm_reset({"username": "rita", "code": code, "new_password": NEW})
    assert await password_is(world, PASSWORD)


async def test_a_reset_code_dies_after_its_wrong_guesses(world: World) -> None:
    code = await reset_code(world)
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    for _ in range(CODE_ATTEMPTS):
        with pytest.raises(InvalidCodeError):
            await world.accounts.confirm_reset(
                {"username": "rita", "code": wrong, "new_password": NEW}, remote=None
            )
        await world.accounts.throttle.login_succeeded("rita", "")  # only the code's count
    with pytest.raises(InvalidCodeError):
        await world.accounts.confirm_reset({"username": "rita", "code": code, "new_password": NEW})
    assert await password_is(world, PASSWORD)
    rita = f"user:{world.rita}"
    personal = {"username": "rita"}
    assert await world.refusals("account.password_reset") == [  # never the codes tried
        *[(rita, world.rita, "bad_code", personal)] * (CODE_ATTEMPTS + 1)
    ]


async def test_a_reset_for_a_username_of_no_one_is_audited_as_anonymous(world: World) -> None:
    body = {"username": "Nobody", "code": "12345678", "new_password": NEW}
    with pytest.raises(InvalidCodeError):
        await world.accounts.confirm_reset(body, remote="10.0.0.7")
    assert await world.refusals("account.password_reset") == [
        ("anonymous", None, "unknown_user", {"username": "nobody", "address": "10.0.0.7"})
    ]
    assert "12345678" not in str(await world.db.fetch_all("SELECT * FROM audit"))


async def test_a_new_code_replaces_the_last_and_a_weak_password_keeps_the_code(
    world: World,
) -> None:
    first = await reset_code(world)
    second = await reset_code(world)
    with pytest.raises(WeakPasswordError):
        await world.accounts.confirm_reset(
            {"username": "rita", "code": second, "new_password": "12345678"}
        )
    if first != second:
        with pytest.raises(InvalidCodeError):
            await world.accounts.confirm_reset(
                {"username": "rita", "code": first, "new_password": NEW}
            )
    await world.accounts.confirm_reset({"username": "rita", "code": second, "new_password": NEW})
    assert await password_is(world, NEW)


async def test_no_code_goes_to_unknown_staff_or_moved_out_accounts(world: World) -> None:
    await create_user(world.db, username="opal", password="x" * 12, roles=["operator"])
    await Residents(world.db, SessionCutoffs(Revocations(InProcessBus()), token_ttl=300)).move_out(
        "operator:test", world.rita
    )
    for name in ("nobody", "opal", "rita"):
        await world.accounts.request_reset({"username": name})
    await world.accounts.settle()
    assert world.outbox.sent == []


async def test_at_most_three_codes_per_account_in_fifteen_minutes(world: World) -> None:
    for _ in range(4):
        await world.accounts.request_reset({"username": "rita"})
    await world.accounts.settle()
    assert len(world.outbox.sent) == 3
    world.clock.advance(901)
    await reset_code(world)
    assert len(world.outbox.sent) == 4


# -- activation --------------------------------------------------------------------------------


async def test_an_invitations_activation_code_sets_the_password_once(world: World) -> None:
    await world.db.execute("INSERT INTO sites (id, name) VALUES ('s', 'S')")
    await world.db.execute("INSERT INTO buildings (id, site_id, name) VALUES ('b', 's', 'B')")
    await world.db.execute(
        "INSERT INTO apartments (id, building_id, number, created_at) VALUES ('b-1', 'b', '1', 0)"
    )
    residents = Residents(world.db, SessionCutoffs(Revocations(InProcessBus()), token_ttl=300))
    world.clock.now = time.time()  # invitations are stamped with the wall clock
    invitation = await residents.invite(
        "operator:test", {"username": "vera", "full_name": "Vera V", "apartment_id": "b-1"}
    )
    vera = invitation.resident["id"]
    code = invitation.activation_code
    body = {"username": "vera", "activation_code": code.upper(), "password": NEW}
    with pytest.raises(WeakPasswordError) as weak:
        await world.accounts.activate({**body, "password": "vera"})
    assert weak.value.field == "password"
    assert await world.accounts.activate(body) == {}
    assert await password_is(world, NEW, vera)
    with pytest.raises(InvalidCodeError):
        await world.accounts.activate({**body, "password": "another passphrase"})
    with pytest.raises(InvalidCodeError):  # a reset code is no activation code, and back
        await world.accounts.confirm_reset({"username": "vera", "code": code, "new_password": NEW})
    [entry] = await world.audit("account.activate")
    assert entry["subject"] == vera


async def test_an_activation_code_expires(world: World) -> None:
    await world.db.execute("INSERT INTO sites (id, name) VALUES ('s', 'S')")
    await world.db.execute("INSERT INTO buildings (id, site_id, name) VALUES ('b', 's', 'B')")
    await world.db.execute(
        "INSERT INTO apartments (id, building_id, number, created_at) VALUES ('b-1', 'b', '1', 0)"
    )
    residents = Residents(
        world.db, SessionCutoffs(Revocations(InProcessBus()), token_ttl=300), activation_ttl=3600
    )
    world.clock.now = time.time()
    invitation = await residents.invite(
        "operator:test", {"username": "vera", "full_name": "Vera V", "apartment_id": "b-1"}
    )
    assert invitation.activation_expires_at == pytest.approx(world.clock() + 3600, abs=60)
    world.clock.advance(3600 + 61)
    body = {"username": "vera", "activation_code": invitation.activation_code, "password": NEW}
    with pytest.raises(InvalidCodeError):
        await world.accounts.activate(body)
    assert not await password_is(world, NEW, invitation.resident["id"])


async def test_a_staff_activation_answers_a_totp_seed_that_the_login_then_requires(
    world: World,
) -> None:
    boss_id = await create_user(world.db, username="boss", password="x" * 12, roles=["admin"])
    staff = Staff(world.db, cut=_no_cut, clock=world.clock)
    boss = Scope(boss_id, frozenset({Role.ADMIN}), None)
    body = {"username": "olga", "full_name": "Olga", "roles": ["operator"], "site_ids": None}
    created = await staff.create(boss, body)
    activation = {
        "username": "olga",
        "activation_code": created["activation_code"],
        "password": NEW,
    }
    answer = await world.accounts.activate(activation)
    assert set(answer) == {"totp_uri"} and answer["totp_uri"].startswith("otpauth://totp/")
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(answer["totp_uri"]).query)["secret"][0]
    now = time.time()
    with pytest.raises(LoginFailedError):  # the password alone no longer signs in
        authenticate(world.db, "olga", NEW, "", now=now)
    login = authenticate(world.db, "olga", NEW, current_code(secret, now), now=now)
    assert login.amr == ("pwd", "otp")


async def test_a_disabled_staff_account_cannot_activate(world: World) -> None:
    boss_id = await create_user(world.db, username="boss", password="x" * 12, roles=["admin"])
    staff = Staff(world.db, cut=_no_cut, clock=world.clock)
    boss = Scope(boss_id, frozenset({Role.ADMIN}), None)
    body = {"username": "olga", "full_name": "Olga", "roles": ["auditor"], "site_ids": None}
    created = await staff.create(boss, body)
    await staff.disable(boss, created["id"])
    activation = {
        "username": "olga",
        "activation_code": created["activation_code"],
        "password": NEW,
    }
    with pytest.raises(InvalidCodeError):
        await world.accounts.activate(activation)
    assert await world.refusals("account.activate") == [
        (f"user:{created['id']}", created["id"], "not_eligible", {"username": "olga"})
    ]


async def _no_cut(user_id: str, at: float) -> None:
    return None
