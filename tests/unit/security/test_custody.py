"""Key custody: with ``PROPDEV_ENV=production`` the master key never lives on the data volume."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from propdev.config import Settings, SettingsError
from propdev.security.crypto import open_vault
from propdev.security.custody import CustodyError, check_custody
from propdev.storage import Database, migrate


def production(data_dir: Path, **extra: str) -> Settings:
    return Settings.from_env(
        {"PROPDEV_DATA_DIR": str(data_dir), "PROPDEV_ENV": "production", **extra}
    )


def key_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64encode(os.urandom(32)))
    return path


def test_production_without_a_master_key_from_outside_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(SettingsError, match="PROPDEV_MASTER_KEY or PROPDEV_MASTER_KEY_FILE"):
        production(tmp_path / "data")


def test_production_refuses_a_master_key_file_inside_the_data_dir(tmp_path: Path) -> None:
    inside = key_file(tmp_path / "data" / "secrets" / "master.key")
    with pytest.raises(SettingsError, match="inside PROPDEV_DATA_DIR"):
        production(tmp_path / "data", PROPDEV_MASTER_KEY_FILE=str(inside))


def test_production_takes_a_key_file_outside_or_the_environment(tmp_path: Path) -> None:
    outside = key_file(tmp_path / "secret-store" / "master.key")
    by_file = production(tmp_path / "data", PROPDEV_MASTER_KEY_FILE=str(outside))
    by_env = production(tmp_path / "data", PROPDEV_MASTER_KEY=outside.read_text())
    assert by_file.production and by_env.production
    check_custody(by_file)
    check_custody(by_env)


async def test_production_refuses_to_open_the_vault_with_a_key_file_left_on_the_volume(
    tmp_path: Path,
) -> None:
    settings = production(
        tmp_path / "data", PROPDEV_MASTER_KEY=base64.b64encode(os.urandom(32)).decode()
    )
    key_file(tmp_path / "data" / "keys" / "master.key")  # the development default, left behind
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        await migrate(db)
        with pytest.raises(CustodyError, match="lies on the data volume"):
            await open_vault(settings, db)
    finally:
        await db.close()


def test_development_keeps_its_default_key_file_and_other_environments_are_refused(
    tmp_path: Path,
) -> None:
    development = Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)})
    key_file(tmp_path / "keys" / "master.key")
    assert not development.production
    check_custody(development)
    with pytest.raises(SettingsError, match="PROPDEV_ENV='staging'"):
        Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path), "PROPDEV_ENV": "staging"})
