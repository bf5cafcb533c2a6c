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
