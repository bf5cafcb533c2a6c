"""The simulated vendor as its own HTTPS server (``python run.py partner-sim``).

The server certificate comes from the project CA (``<pki dir>/partner-sim/``) and covers
127.0.0.1 and localhost; only TLS 1.2 and 1.3 are offered. The API key is the one in the data
dir (see ``propdev.partners.apikey``) unless one is given.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from aiohttp import web

from propdev.config import Settings
from propdev.partners.apikey import api_key_path, vendor_api_key
from propdev.partners.simulator.app import make_vendor_app
from propdev.partners.simulator.state import VendorSimulator
from propdev.pki import ensure_server_cert, server_context

DEFAULT_PORT = 9443
PARTNER_ID = "simulator"
CERT_NAME = "partner-sim"
CERT_HOSTS = ("127.0.0.1", "localhost")
SHUTDOWN_TIMEOUT = 2.0

log = structlog.get_logger()


@dataclass(slots=True)
class PartnerSimServer:
    """A running simulator: its base URL, its state, and ``close()``."""

    url: str
    sim: VendorSimulator
    runner: web.AppRunner

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def close(self) -> None:
        """Stop: commands still in progress are cancelled, then the listener closes."""
        await self.sim.close()
        await self.runner.cleanup()


async def run_partner_sim(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    sim: VendorSimulator | None = None,
    api_key: str | None = None,
) -> PartnerSimServer:
    """Start the vendor API and control API over HTTPS; ``port=0`` picks a free port."""
    sim = sim or VendorSimulator()
    key = api_key or vendor_api_key(settings.data_dir, PARTNER_ID)
    cert = ensure_server_cert(settings.pki_dir, CERT_HOSTS, name=CERT_NAME)
    ssl_context = server_context(settings.pki_dir, cert)
    app = make_vendor_app(sim, api_key=key)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    url_host = f"[{host}]" if ":" in host else host
    return PartnerSimServer(f"https://{url_host}:{bound}", sim, runner)


async def serve_forever(
    settings: Settings, port: int = DEFAULT_PORT, *, host: str = "127.0.0.1"
) -> None:
    """Run the simulator until cancelled (Ctrl-C); always closes cleanly."""
    server = await run_partner_sim(settings, host=host, port=port)
    log.info(
        "partner_sim_started",
        url=server.url,
        partner=PARTNER_ID,
        api_key_file=str(api_key_path(settings.data_dir, PARTNER_ID)),
    )
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
        log.info("partner_sim_stopped", url=server.url)
