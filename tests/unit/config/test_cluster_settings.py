"""The cluster's settings: Redis by URL or by Sentinel, and the node's roles."""

from __future__ import annotations

import pytest

from propdev.config import Settings, SettingsError


def test_sentinels_and_their_service_are_read_with_the_default_service() -> None:
    s = Settings.from_env({"PROPDEV_REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380,s3:26381"})
    assert s.redis_sentinels == (("10.0.0.1", 26379), ("::1", 26380), ("s3", 26381))
    assert s.redis_service == "propdev"
    assert s.clustered and s.redis_url is None
    named = Settings.from_env(
        {"PROPDEV_REDIS_SENTINELS": "h:26379", "PROPDEV_REDIS_SERVICE": "hub-a"}
    )
    assert named.redis_service == "hub-a"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("h", "is not host:port"),
        ("h:0", "is not host:port"),
        ("h:70000", "is not host:port"),
        (":26379", "is not host:port"),
        ("h:26379,h:26379", "named twice"),
        (" , ", "expected host:port"),
    ],
)
def test_a_bad_sentinel_list_is_refused_naming_the_variable(value: str, words: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"PROPDEV_REDIS_SENTINELS": value})
    assert "PROPDEV_REDIS_SENTINELS" in str(err.value) and words in str(err.value)


def test_a_redis_url_and_sentinels_together_are_refused() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(
            {"PROPDEV_REDIS_URL": "redis://r:6379/0", "PROPDEV_REDIS_SENTINELS": "s:26379"}
        )
    assert "PROPDEV_REDIS_URL" in str(err.value) and "PROPDEV_REDIS_SENTINELS" in str(err.value)


def test_a_node_has_both_roles_by_default_and_is_embedded_without_redis() -> None:
    s = Settings.from_env({})
    assert s.roles == ("devices", "gateway") and s.gateway and s.devices
    assert not s.clustered


@pytest.mark.parametrize(
    ("value", "gateway", "devices"),
    [("gateway", True, False), ("devices", False, True), ("devices , gateway", True, True)],
)
def test_roles_are_read_from_a_comma_list(value: str, gateway: bool, devices: bool) -> None:
    s = Settings.from_env({"PROPDEV_ROLES": value, "PROPDEV_REDIS_URL": "redis://r:6379/0"})
    assert (s.gateway, s.devices) == (gateway, devices)


@pytest.mark.parametrize("value", ["gateway,worker", ",", "GATEWAY"])
def test_an_unknown_role_is_refused(value: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"PROPDEV_ROLES": value, "PROPDEV_REDIS_URL": "redis://r:6379/0"})
    assert "PROPDEV_ROLES" in str(err.value) and "gateway" in str(err.value)


def test_one_role_without_a_cluster_is_refused() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"PROPDEV_ROLES": "gateway"})
    assert "PROPDEV_ROLES" in str(err.value) and "PROPDEV_REDIS_URL" in str(err.value)
