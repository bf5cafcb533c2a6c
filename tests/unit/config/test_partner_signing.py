"""``PROPDEV_PARTNER_SIGNING``: which partners' calls we sign, how, and under which key id."""

from __future__ import annotations

import pytest

from propdev.config import PartnerSigning, Settings, SettingsError


def test_partners_are_named_with_an_algorithm_and_an_optional_key_id() -> None:
    settings = Settings.from_env(
        {"PROPDEV_PARTNER_SIGNING": "simulator, acme:ecdsa-p256-sha256:acme-2026 ,vendor:ed25519"}
    )
    assert settings.partner_signing == (
        PartnerSigning("simulator", "ed25519", None),
        PartnerSigning("acme", "ecdsa-p256-sha256", "acme-2026"),
        PartnerSigning("vendor", "ed25519", None),
    )
    assert settings.signing_for("acme") == PartnerSigning("acme", "ecdsa-p256-sha256", "acme-2026")
    assert settings.signing_for("utilities") is None


def test_no_partner_is_signed_by_default() -> None:
    assert Settings.from_env({}).partner_signing == ()
    assert Settings.from_env({}).signing_for("simulator") is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("acme:rsa-v1_5-sha256", "algorithm 'rsa-v1_5-sha256'"),
        ("acme,acme:ed25519", "named twice"),
        ("ac me", "letters, digits"),
        ("acme:ed25519:bad key", "letters, digits"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_variable(value: str, words: str) -> None:
    with pytest.raises(SettingsError, match="PROPDEV_PARTNER_SIGNING") as caught:
        Settings.from_env({"PROPDEV_PARTNER_SIGNING": value})
    assert words in str(caught.value)
