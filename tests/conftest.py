"""Fixtures shared by all tests."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get("PROPDEV_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


# PROPDEV_TEST_IN_PROCESS=1 keeps only the in-process variants of the tests parametrized over
# backends (SQLite, the local throttle store): ``scripts/mutate`` runs each mutant against them.
_OUT_OF_PROCESS = {"postgresql", "redis"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PROPDEV_TEST_IN_PROCESS") != "1":
        return
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        out = any(isinstance(v, str) and v in _OUT_OF_PROCESS for v in params.values())
        (drop if out else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
