"""Fixtures: a vendor simulator in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from propdev.devkit import VendorSimulator


@pytest.fixture
async def sim() -> AsyncIterator[VendorSimulator]:
    simulator = VendorSimulator()
    yield simulator
    await simulator.close()
