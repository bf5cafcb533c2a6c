"""Personal data and secrets at rest: sealed in the database, absent from files and logs."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from propdev.security.blind_index import normalize_phone, normalize_plate, phone_index
from propdev.security.crypto import (
    CryptoError,
    MasterKeyError,
    PersonKeyDestroyedError,
    UnknownKeyError,
    Vault,
)
from propdev.security.personal import USER_KEY, open_user_field, reencrypt
from propdev.storage import Database, migrate
from tests.e2e.conftest import RunningNode

PLATE = "\u0410123\u0412\u0421777"  # A123BC777 typed with Cyrillic letters


def _needles(node: RunningNode) -> list[str]:
    found = []
    for r in node.credentials["residents"]:
        found += [r["full_name"], r["phone"], r["phone"].removeprefix("+")]
    found += [node.credentials["operator"]["totp_secret"], "A123BC777", PLATE]
    return found


async def test_no_name_phone_plate_or_seed_in_clear_in_the_data_dir_or_logs(
    node: RunningNode, capfd: pytest.CaptureFixture[str]
) -> None:
    anna = {"Authorization": f"Bearer {await node.token_for('anna')}"}
    async with node.http.get(f"{node.url}/api/v1/me", headers=anna) as resp:
        assert (await resp.json())["full_name"] == node.resident("anna")["full_name"]
    async with node.http.post(
        f"{node.url}/api/v1/vehicles", headers=anna, json={"plate": PLATE}
    ) as r:
        assert r.status == 201, await r.text()
    async with node.http.post(
        f"{node.url}/api/v1/access-points/ap-a-entrance/open", headers=anna
    ) as resp:
        assert resp.status == 200
    async with node.http.get(f"{node.url}/api/v1/vehicles", headers=anna) as resp:
        assert "A123BC777" in await resp.text()  # the owner still sees it
    await node.token_for("operator")
    logs = capfd.readouterr()
    haystacks = {"stdout": logs.out.encode(), "stderr": logs.err.encode()}
    for path in Path(node.settings.data_dir).rglob("*"):
        if path.is_file() and path.name != "demo-credentials.json":  # the demo's own handout
            haystacks[str(path)] = path.read_bytes()
    assert any(p.endswith("propdev.db") for p in haystacks)
    for needle in _needles(node):
        for name, data in haystacks.items():
            assert needle.encode() not in data, (needle, name)


async def _vault(tmp_path: Path) -> Vault:
    db = Database(f"sqlite:///{tmp_path}/v.db")
    await migrate(db)
    vault = Vault(db, os.urandom(32))
    await vault.load()
    return vault


async def test_sealed_values_are_bound_to_their_row_and_column(tmp_path: Path) -> None:
    vault = await _vault(tmp_path)
    sealed = vault.seal("Anna Smirnova", table="users", column="full_name", row_id="u1")
    assert sealed != vault.seal("Anna Smirnova", table="users", column="full_name", row_id="u1")
    assert vault.open(sealed, table="users", column="full_name", row_id="u1") == "Anna Smirnova"
    for place in (("users", "full_name", "u2"), ("users", "phone", "u1")):
        with pytest.raises(CryptoError):
            vault.open(sealed, table=place[0], column=place[1], row_id=place[2])
    raw = bytearray(base64.urlsafe_b64decode(sealed.split(":")[2] + "=="))
    raw[-1] ^= 1
    tampered = "v1:k0001:" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(CryptoError):
        vault.open(tampered, table="users", column="full_name", row_id="u1")
    with pytest.raises(UnknownKeyError):
        vault.open(sealed.replace("k0001", "k0099"), table="users", column="full_name", row_id="u1")
    await vault.db.close()  # type: ignore[union-attr]


async def test_rotation_keeps_old_rows_readable_and_reencrypts_them(tmp_path: Path) -> None:
    vault = await _vault(tmp_path)
    db = vault.db
    assert db is not None
    old = vault.seal("+79990000001", table="users", column="phone", row_id="u1")
    await db.execute(
        "INSERT INTO users (id, username, password_hash, roles, phone, created_at)"
        " VALUES ('u1', 'u', 'x', 'resident', :p, 0)",
        p=old,
    )
    assert vault.rotate() == "k0002"
    assert vault.open(old, table="users", column="phone", row_id="u1") == "+79990000001"
    assert reencrypt(db, vault) == 1
    row = await db.fetch_one(
        f"SELECT users.*, {USER_KEY} FROM users WHERE id = 'u1'"
    )  # moved under the user's own key, itself wrapped by the new data key
    assert row is not None and row["phone"].startswith("p1:")
    assert row["person_key"].startswith("v1:k0002:")
    assert open_user_field(vault, row, "phone") == "+79990000001"
    assert row["phone_index"] == phone_index(vault, "8 (999) 000-00-01")
    assert reencrypt(db, vault) == 0  # resumable: nothing left under the old key
    with pytest.raises(MasterKeyError):  # another master key cannot unwrap the data keys
        Vault(db, os.urandom(32)).load_sync()
    await db.close()


def test_blind_index_normalisation() -> None:
    assert {
        normalize_phone(p) for p in ("+7 (916) 123-45-67", "8 916 1234567", "+79161234567")
    } == {"+79161234567"}
    assert normalize_plate(PLATE) == normalize_plate("a123bc 777") == "A123BC777"


async def test_values_under_a_person_key_are_bound_to_their_place_and_their_person(
    tmp_path: Path,
) -> None:
    vault = await _vault(tmp_path)
    rita_key, rita_wrapped = vault.new_person_key("rita")
    _oleg_key, oleg_wrapped = vault.new_person_key("oleg")
    sealed = vault.seal_person(
        rita_key, "+79990000001", table="users", column="phone", row_id="rita"
    )
    assert sealed.startswith("p1:") and "7999" not in sealed
    place = {"table": "users", "column": "phone", "row_id": "rita"}
    assert vault.open_person(rita_wrapped, "rita", sealed, **place) == "+79990000001"
    with pytest.raises(CryptoError):  # another person's key
        vault.open_person(oleg_wrapped, "oleg", sealed, **place)
    with pytest.raises(CryptoError):  # Rita's key presented as Oleg's: bound to her row
        vault.open_person(rita_wrapped, "oleg", sealed, **place)
    with pytest.raises(CryptoError):  # another row
        vault.open_person(rita_wrapped, "rita", sealed, **{**place, "row_id": "oleg"})
    with pytest.raises(PersonKeyDestroyedError):  # erased: no key to present
        vault.open_person(None, "rita", sealed, **place)
    await vault.db.close()  # type: ignore[union-attr]
