"""Opening a sealed value again reuses its subkey, and still authenticates it."""

from __future__ import annotations

import base64

import pytest

from propdev.security.crypto import OPENED_KEYS, CryptoError, Vault


def _tampered(sealed: str) -> str:
    kid, text = sealed.split(":")[1:]
    raw = bytearray(base64.urlsafe_b64decode(text + "=="))
    raw[-1] ^= 1  # the tag: same salt, so the same cached subkey
    return f"v1:{kid}:" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_a_value_opened_again_reads_the_same_and_a_tampered_twin_is_refused() -> None:
    vault = Vault.for_tests()
    sealed = vault.seal("Anna Smirnova", table="users", column="full_name", row_id="u1")

    first = vault.open(sealed, table="users", column="full_name", row_id="u1")
    again = vault.open(sealed, table="users", column="full_name", row_id="u1")

    assert first == again == "Anna Smirnova"
    assert len(vault._opened) == 1
    with pytest.raises(CryptoError):
        vault.open(_tampered(sealed), table="users", column="full_name", row_id="u1")
    with pytest.raises(CryptoError):
        vault.open(sealed, table="users", column="full_name", row_id="u2")


def test_the_kept_subkeys_are_bounded() -> None:
    vault = Vault.for_tests()
    sealed = [
        vault.seal(f"name {n}", table="users", column="full_name", row_id=f"u{n}")
        for n in range(OPENED_KEYS + 10)
    ]

    opened = [
        vault.open(s, table="users", column="full_name", row_id=f"u{n}")
        for n, s in enumerate(sealed)
    ]

    assert opened == [f"name {n}" for n in range(OPENED_KEYS + 10)]
    assert len(vault._opened) <= OPENED_KEYS
