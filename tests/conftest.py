"""Fixtures shared by all tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

POSTGRES_URL = os.environ.get("PROPDEV_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Passwords hashed with the cheapest argon2 parameters instead of the production ones
    (about half a second per hash saved), for tests about anything but password hashing."""
    from argon2 import PasswordHasher

    from propdev.security import passwords

    monkeypatch.setattr(
        passwords, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    passwords._dummy_hash.cache_clear()
    yield
    passwords._dummy_hash.cache_clear()  # no cheap dummy hash left for the tests after


# PROPDEV_TEST_SKIP_BACKENDS=postgresql,redis drops the variants of the tests parametrized over
# those backends (the SQLite and in-process ones stay): ``scripts/mutate`` runs each mutant
# against the fast variants only.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = {b for b in os.environ.get("PROPDEV_TEST_SKIP_BACKENDS", "").split(",") if b}
    if not skip:
        return
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        out = any(isinstance(v, str) and v in skip for v in params.values())
        (drop if out else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def logs_captured() -> Iterator[list[dict[str, Any]]]:
    """The structlog events logged during the test, kept out of stdout: a command called
    in-process prints its answer there, and its log lines (its audit entries among them) would
    go there too with the test process's default logging (``run.py`` logs them to stderr)."""
    with capture_logs() as logs:
        yield logs
