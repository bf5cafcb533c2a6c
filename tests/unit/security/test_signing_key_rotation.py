"""Token-signing key rotation with overlap: the new key signs, the old stays in the JWKS (its
tokens verify) until the overlap has passed; nodes pick a rotation up by watching the files."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from propdev.admin_cli import signing_keys_command
from propdev.config.settings import Settings
from propdev.security import InvalidTokenError, SigningKeys, TokenIssuer, TokenVerifier
from propdev.security.keys import OVERLAP
from tests.support.eventually import eventually
from tests.unit.security.conftest import ISSUER


def settings_for(tmp_path: Path) -> Settings:
    return Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path), "PROPDEV_PUBLIC_URL": ISSUER})


def access(issuer: TokenIssuer) -> str:
    return issuer.issue_access_token("u1", "app", "api", ["resident"], ["pwd"])


async def test_a_rotation_elsewhere_is_picked_up_and_old_tokens_verify_until_retirement(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    node_keys = SigningKeys.load_or_create(settings.pki_dir / "jwt")
    issuer = TokenIssuer(settings, node_keys)
    old_kid = node_keys.signing_key.kid
    old_token = access(issuer)
    watch = asyncio.create_task(node_keys.watch(interval=0.01, clock=lambda: 0.0))
    try:
        new_kid = SigningKeys.load_or_create(node_keys.directory).rotate().kid  # the CLI

        await eventually(
            lambda: asyncio.sleep(0, node_keys.signing_key.kid == new_kid),
            within=10,
            what="the node signs with the rotated key",
        )
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch

    new_token = access(issuer)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid != old_kid
    assert [k["kid"] for k in node_keys.jwks()["keys"]] == [new_kid, old_kid]
    verifier = TokenVerifier(settings, node_keys)
    assert verifier.verify(old_token).sub == verifier.verify(new_token).sub == "u1"

    made = node_keys.get(new_kid)
    assert made is not None
    assert node_keys.retire_expired(made.created_at + OVERLAP - 1) == []
    assert node_keys.retirement_times() == {old_kid: made.created_at + OVERLAP}
    assert node_keys.retire_expired(made.created_at + OVERLAP) == [old_kid]
    assert [k["kid"] for k in node_keys.jwks()["keys"]] == [new_kid]
    with pytest.raises(InvalidTokenError, match="unknown signing key"):
        TokenVerifier(settings, node_keys).verify(old_token)
    assert TokenVerifier(settings, node_keys).verify(new_token).sub == "u1"


async def test_a_node_retires_a_key_by_itself_once_its_overlap_has_passed(tmp_path: Path) -> None:
    keys = SigningKeys.load_or_create(tmp_path / "jwt")
    old_kid = keys.signing_key.kid
    new_kid = keys.rotate().kid
    assert set(keys.kids()) == {old_kid, new_kid}
    later = keys.retirement_times()[old_kid]
    watch = asyncio.create_task(keys.watch(interval=0.01, clock=lambda: later))
    try:
        await eventually(
            lambda: asyncio.sleep(0, keys.kids() == [new_kid]),
            within=10,
            what="the old key retired by the watch",
        )
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    assert sorted(p.name for p in (tmp_path / "jwt").iterdir()) == ["key-000002.pem"]


def test_rotate_signing_keeps_the_old_key_published_and_retire_old_drops_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs_captured: list[dict[str, Any]],  # its audit entry's log line, off stdout
) -> None:
    settings = settings_for(tmp_path)
    first = SigningKeys.load_or_create(settings.pki_dir / "jwt").signing_key.kid

    assert signing_keys_command(settings, "rotate-signing", False) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["published"] == [rotated["signing"], first] and rotated["retired"] == []
    assert set(rotated["retires_at"]) == {first}

    assert signing_keys_command(settings, "rotate-signing", True) == 0
    emergency = json.loads(capsys.readouterr().out)
    assert emergency["published"] == [emergency["signing"]]
    assert sorted(emergency["retired"]) == sorted([first, rotated["signing"]])
