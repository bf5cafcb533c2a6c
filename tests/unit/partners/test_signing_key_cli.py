"""``run.py partner signing-key``: makes the key once, prints the public half, refuses a
mismatch between the key on disk, ``--alg`` and ``PROPDEV_PARTNER_SIGNING``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from propdev.partners import signing_key_path
from tests.support.processes import cli_env, run_cli

pytestmark = pytest.mark.slow  # each run.py start imports the whole package (~1-2 s)


async def test_the_key_is_made_once_and_its_public_half_printed(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    jwk = await run_cli(
        ["partner", "signing-key", "acme", "--alg", "ecdsa-p256-sha256", "--format", "jwk"], env
    )
    assert jwk.returncode == 0, jwk
    key = json.loads(jwk.stdout)
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert "signing off" in jwk.stderr and key["kid"] in jwk.stderr
    path = signing_key_path(tmp_path, "acme")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    signed = {**env, "PROPDEV_PARTNER_SIGNING": "acme:ecdsa-p256-sha256:acme-1"}
    pem = await run_cli(["partner", "signing-key", "acme"], signed)
    assert pem.returncode == 0, pem
    public = serialization.load_pem_public_key(pem.stdout.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert "keyid acme-1" in pem.stderr and "signing on" in pem.stderr


async def test_a_mismatched_algorithm_is_refused_with_exit_2(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert (await run_cli(["partner", "signing-key", "acme"], env)).returncode == 0  # ed25519
    other = await run_cli(
        ["partner", "signing-key", "acme"],
        {**env, "PROPDEV_PARTNER_SIGNING": "acme:ecdsa-p256-sha256"},
    )
    assert other.returncode == 2 and "cannot sign ecdsa-p256-sha256" in other.stderr
    contradicted = await run_cli(
        ["partner", "signing-key", "acme", "--alg", "ed25519"],
        {**env, "PROPDEV_PARTNER_SIGNING": "acme:ecdsa-p256-sha256"},
    )
    assert contradicted.returncode == 2 and "PROPDEV_PARTNER_SIGNING says" in contradicted.stderr
