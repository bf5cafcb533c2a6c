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
