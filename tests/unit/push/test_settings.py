"""Push settings: read from the environment, checked loudly, and the providers they make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from propdev.config import Settings, SettingsError
from propdev.push import PushConfigError, providers_from
from tests.support.push_standins import pem


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path), **env})


def test_no_credentials_no_providers(tmp_path: Path) -> None:
    assert providers_from(settings(tmp_path)) == {}


def test_provider_urls_must_be_https(tmp_path: Path) -> None:
    for var in ("PROPDEV_FCM_URL", "PROPDEV_APNS_URL"):
        with pytest.raises(SettingsError, match=var):
            settings(tmp_path, **{var: "http://127.0.0.1:1"})


async def test_each_platform_is_on_when_its_credentials_are_given(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = {
        "project_id": "p",
        "client_email": "push@p.iam.gserviceaccount.com",
        "private_key_id": "k1",
        "private_key": pem(key).decode(),
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    (tmp_path / "sa.json").write_text(json.dumps(account))
    (tmp_path / "apns.p8").write_bytes(pem(ec.generate_private_key(ec.SECP256R1())))
    (tmp_path / "vapid.pem").write_bytes(pem(ec.generate_private_key(ec.SECP256R1())))
    found = providers_from(
        settings(
            tmp_path,
            PROPDEV_FCM_CREDENTIALS=str(tmp_path / "sa.json"),
            PROPDEV_APNS_KEY_FILE=str(tmp_path / "apns.p8"),
            PROPDEV_APNS_KEY_ID="KEY1234567",
            PROPDEV_APNS_TEAM_ID="TEAM123456",
            PROPDEV_APNS_TOPIC="ru.propdev.app",
            PROPDEV_VAPID_PRIVATE_KEY_FILE=str(tmp_path / "vapid.pem"),
        )
    )
    try:
        assert sorted(found) == ["apns", "fcm", "webpush"]
    finally:
        for provider in found.values():
            await provider.close()


def test_an_apns_key_without_its_ids_or_a_wrong_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "apns.p8").write_bytes(pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(PushConfigError, match="PROPDEV_APNS_TEAM_ID"):
        providers_from(
            settings(
                tmp_path,
                PROPDEV_APNS_KEY_FILE=str(tmp_path / "apns.p8"),
                PROPDEV_APNS_KEY_ID="KEY1234567",
                PROPDEV_APNS_TOPIC="ru.propdev.app",
            )
        )
    (tmp_path / "rsa.pem").write_bytes(pem(rsa.generate_private_key(65537, 2048)))
    with pytest.raises(PushConfigError, match="P-256"):
        providers_from(settings(tmp_path, PROPDEV_VAPID_PRIVATE_KEY_FILE=str(tmp_path / "rsa.pem")))
