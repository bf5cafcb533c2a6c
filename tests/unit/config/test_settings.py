from __future__ import annotations

from pathlib import Path

import pytest

from propdev.config import Settings, SettingsError


def test_defaults_follow_the_contract() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.access_token_ttl, s.rate_limit) == ("127.0.0.1", 8443, 300, 10.0)
    assert s.public_url == "https://127.0.0.1:8443"
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("var/propdev.db")
    assert s.redis_url is None and s.embedded_partner
    assert s.audit_checkpoint_seconds == 60
    assert (
        Settings.from_env({"PROPDEV_AUDIT_CHECKPOINT_SECONDS": "5"}).audit_checkpoint_seconds == 5
    )


def test_the_environment_wins_over_the_toml_file(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('port = 9000\nhost = "0.0.0.0"\n')
    s = Settings.from_env({"PROPDEV_PORT": "9100"}, toml)
    assert (s.host, s.port) == ("0.0.0.0", 9100)


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("PROPDEV_ACCESS_TOKEN_TTL", "901", "between 10 and 900"),
        ("PROPDEV_PORT", "http", "expected an integer"),
        ("PROPDEV_DATABASE_URL", "mysql://x", "sqlite or postgresql"),
        ("PROPDEV_PARTNER_URL", "http://plain", "https"),
        ("PROPDEV_AUDIT_CHECKPOINT_SECONDS", "0", "between 1 and 86400"),
        ("PROPDEV_AUDIT_CHECKPOINT_SECONDS", "1m", "expected an integer"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(var: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({var: value})
    assert var in str(err.value) and words in str(err.value)
