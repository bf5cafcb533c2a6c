"""Fixtures: the simulator, served over real TLS from a project CA in ``tmp_path``, and adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.config import Settings
from propdev.devkit import PartnerSimServer, VendorSimulator, run_partner_sim
from propdev.partners import InProcessAdapter, PartnerAdapter, VendorHttpAdapter, vendor_api_key
from propdev.pki import client_context, ensure_ca

ADAPTERS = ("inprocess", "https")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings over a data dir with the project CA already created."""
    resolved = Settings(data_dir=tmp_path).resolved()
    ensure_ca(resolved.pki_dir)
    return resolved


@pytest.fixture
async def sim() -> AsyncIterator[VendorSimulator]:
    simulator = VendorSimulator()
    yield simulator
    await simulator.close()


@pytest.fixture
async def server(settings: Settings, sim: VendorSimulator) -> AsyncIterator[PartnerSimServer]:
    running = await run_partner_sim(settings, port=0, sim=sim)
    yield running
    await running.close()


def http_adapter(settings: Settings, url: str, *, timeout: float = 5.0) -> VendorHttpAdapter:
    return VendorHttpAdapter(
        "simulator",
        url,
        ssl_context=client_context(settings.pki_dir),
        api_key=vendor_api_key(settings.data_dir),
        timeout=timeout,
    )


@pytest.fixture
async def https(settings: Settings, server: PartnerSimServer) -> AsyncIterator[VendorHttpAdapter]:
    adapter = http_adapter(settings, server.url)
    yield adapter
    await adapter.close()


@pytest.fixture(params=ADAPTERS)
async def adapter(
    request: pytest.FixtureRequest, settings: Settings, sim: VendorSimulator
) -> AsyncIterator[PartnerAdapter]:
    """The same vendor behind each adapter: in-process, and HTTPS to the served simulator."""
    if request.param == "inprocess":
        yield InProcessAdapter(sim)
        return
    running = await run_partner_sim(settings, port=0, sim=sim)
    client = http_adapter(settings, running.url)
    yield client
    await client.close()
    await running.close()
