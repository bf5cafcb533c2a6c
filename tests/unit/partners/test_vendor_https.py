"""The HTTPS adapter specifically: TLS trust, headers, keep-alive, answers it must not trust."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from propdev.config import Settings
from propdev.devkit import PartnerSimServer, VendorSimulator, run_partner_sim
from propdev.partners import (
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
    VendorHttpAdapter,
)
from propdev.pki import client_context, ensure_server_cert, server_context
from tests.unit.partners.conftest import http_adapter

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Serve]:
    """Serve an arbitrary app over TLS with a certificate from the project CA."""
    runners: list[web.AppRunner] = []
    cert = ensure_server_cert(settings.pki_dir, ("127.0.0.1",), name="fake-vendor")

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        ctx = server_context(settings.pki_dir, cert)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
        return f"https://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def answering(status: int, body: str, content_type: str = "application/json") -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def test_the_vendor_is_served_over_tls_1_2_or_later_only(
    settings: Settings, server: PartnerSimServer
) -> None:
    tls12 = client_context(settings.pki_dir)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls11 = client_context(settings.pki_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tls11.minimum_version = tls11.maximum_version = ssl.TLSVersion.TLSv1_1
    tls11.set_ciphers("DEFAULT:@SECLEVEL=0")
    url = f"{server.url}/sim/v1/faults"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=tls12) as resp:
            assert resp.status == 200
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url, ssl=tls11)


async def test_a_vendor_certificate_not_from_our_ca_is_rejected(
    settings: Settings, tmp_path: Path, sim: VendorSimulator
) -> None:
    foreign = Settings(data_dir=tmp_path / "foreign").resolved()  # another CA entirely
    trusting_ours = client_context(settings.pki_dir)
    stranger = await run_partner_sim(foreign, port=0, sim=sim, api_key="k")
    adapter = VendorHttpAdapter(
        "simulator", stranger.url, ssl_context=trusting_ours, api_key="k", timeout=5
    )
    try:
        with pytest.raises(PartnerUnavailableError) as caught:
            await adapter.open("sim-door-1", request_id="req-1")
    finally:
        await adapter.close()
        await stranger.close()

    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorCertificateError)
    assert sim.commands() == []


async def test_a_wrong_api_key_makes_the_partner_unavailable(
    settings: Settings, server: PartnerSimServer, sim: VendorSimulator
) -> None:
    adapter = VendorHttpAdapter(
        "simulator",
        server.url,
        ssl_context=client_context(settings.pki_dir),
        api_key="not-the-key",
        timeout=5,
    )
    try:
        with pytest.raises(PartnerUnavailableError, match="401"):
            await adapter.open("sim-door-1", request_id="req-1")
    finally:
        await adapter.close()
    assert sim.commands() == []


async def test_slow_beyond_the_adapter_timeout_is_a_partner_timeout(
    settings: Settings, server: PartnerSimServer, sim: VendorSimulator
) -> None:
    sim.set_faults("slow", latency_ms=5_000)
    adapter = http_adapter(settings, server.url, timeout=0.2)
    try:
        with pytest.raises(PartnerTimeoutError):
            await adapter.open("sim-door-1", request_id="req-1")
    finally:
        await adapter.close()


async def test_one_keep_alive_session_serves_every_call_until_closed(
    https: VendorHttpAdapter,
) -> None:
    await https.open("sim-door-1", request_id="a")
    session = https._http._session
    await https.list_devices()

    assert session is not None and https._http._session is session
    await https.close()
    assert session.closed
    await https.close()  # idempotent


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (500, '{"error": "internal_error"}', "application/json"),
        (502, "<html>bad gateway</html>", "text/html"),
        (200, "not json", "text/plain"),
        (200, '{"status": "opened"}', "application/json"),  # no command_id
        (404, "<html>not found</html>", "text/html"),
        (429, '{"error": "rate_limited"}', "application/json"),
    ],
)
async def test_server_errors_and_garbage_make_the_partner_unavailable(
    settings: Settings, serve: Serve, status: int, body: str, content_type: str
) -> None:
    adapter = http_adapter(settings, await serve(answering(status, body, content_type)))
    try:
        with pytest.raises(PartnerUnavailableError):
            await adapter.open("d", request_id="r")
    finally:
        await adapter.close()


async def test_a_4xx_with_an_error_code_is_a_refusal_with_that_reason(
    settings: Settings, serve: Serve
) -> None:
    body = '{"error": "device_busy", "message": "try later"}'
    adapter = http_adapter(settings, await serve(answering(409, body)))
    try:
        with pytest.raises(PartnerRefusedError) as caught:
            await adapter.open("d", request_id="r")
    finally:
        await adapter.close()

    assert (caught.value.reason, caught.value.message) == ("device_busy", "try later")


async def test_nothing_listening_makes_the_partner_unavailable(
    settings: Settings, port: int
) -> None:
    adapter = http_adapter(settings, f"https://127.0.0.1:{port}")
    try:
        with pytest.raises(PartnerUnavailableError):
            await adapter.list_devices()
    finally:
        await adapter.close()


async def test_device_ids_are_escaped_in_the_path(
    https: VendorHttpAdapter, sim: VendorSimulator
) -> None:
    sim.add_device("odd/id ?#", "door")

    await https.open("odd/id ?#", request_id="r")

    assert sim.commands()[0]["device_id"] == "odd/id ?#"
