"""The simulated vendors as their own HTTPS server (``python run.py partner-sim``).

The server certificate comes from the project CA (``<pki dir>/partner-sim/``) and covers
127.0.0.1 and localhost; only TLS 1.2 and 1.3 are offered. The API key is the one in the data
dir (see ``propdev.partners.vendor_api_key``) unless one is given.

The intercom vendor (``/vendor/v1``, control ``/sim/v1``) is partner ``simulator`` unless another
``partner_id`` is given (``run.py partner-sim --partner vendor-b``: another vendor of the same
protocol, with that partner's API key, callback certificate and signature key). Beside it the same
listener serves the asynchronous vendor acme (partner ``acme``, ``/acme/v2``, control
``/sim/acme/v1``). Each calls back ``settings.callback_url`` as its partner, with that partner's
client certificate from the data dir (``<pki dir>/partners/<name>/``); a vendor whose partner
has no certificate there sends no callbacks (logged at start). A ``PartnerIdentity`` (``run.py
partner-sim --partner NAME --client-cert PEM --client-key PEM --webhook-secret S --api-key K
--callback-url URL``, ``--protocol acme`` for the acme half) replaces any of those: a partner
registered through the admin API, whose key and secret are not in the data dir. A partner named in
``PROPDEV_PARTNER_SIGNING`` has its API calls' RFC 9421 signatures checked against our public
key for it (from the shared data dir, as the API key), as a vendor that verifies them would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from propdev.config import Settings
from propdev.devkit.vendor_sim.acme import (
    AcmeSimulator,
    acme_auth_middleware,
    acme_control_routes,
    acme_routes,
    acme_signature_middleware,
)
from propdev.devkit.vendor_sim.app import make_vendor_app
from propdev.devkit.vendor_sim.state import VendorSimulator
from propdev.partners import (
    CallbackSender,
    api_key_path,
    request_verifier,
    vendor_api_key,
    webhook_secret,
)
from propdev.pki import (
    CertPaths,
    client_context,
    ensure_server_cert,
    partner_paths,
    server_context,
)

DEFAULT_PORT = 9443
PARTNER_ID = "simulator"
ACME_PARTNER_ID = "acme"
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
    acme: AcmeSimulator | None = None
    senders: tuple[CallbackSender, ...] = ()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def close(self) -> None:
        """Stop: commands still in progress are cancelled, then the listener closes."""
        await self.sim.close()
        if self.acme is not None:
            await self.acme.close()
        for sender in self.senders:
            await sender.close()
        await self.runner.cleanup()


@dataclass(frozen=True, slots=True)
class PartnerIdentity:
    """Who a simulated vendor is to our node: each field unset is taken from the data dir
    (today's files), so that one ``partner-sim`` can act as any registered partner
    (``run.py partner-sim --partner NAME --client-cert PEM --client-key PEM --webhook-secret S
    --api-key K --callback-url URL``)."""

    partner_id: str = PARTNER_ID
    client_cert: Path | None = None
    client_key: Path | None = None
    webhook_secret: str | None = None
    api_key: str | None = None
    callback_url: str | None = None


def callback_sender(settings: Settings, identity: PartnerIdentity | str) -> CallbackSender | None:
    """A sender of the partner's callbacks to its callback URL (``settings.callback_url`` by
    default), with its client certificate (the data dir's unless given) and webhook secret."""
    if isinstance(identity, str):
        identity = PartnerIdentity(identity)
    partner_id = identity.partner_id
    paths = partner_paths(settings.pki_dir, partner_id)
    if identity.client_cert is not None or identity.client_key is not None:
        if identity.client_cert is None or identity.client_key is None:
            raise ValueError("--client-cert and --client-key go together")
        paths = CertPaths(identity.client_cert, identity.client_key)
    if not (paths.cert.exists() and paths.key.exists()):
        log.warning("partner_sim_no_callbacks", partner=partner_id, missing=str(paths.cert))
        return None
    return CallbackSender(
        partner_id=partner_id,
        callback_url=identity.callback_url or settings.callback_url,
        ssl_context=client_context(settings.pki_dir, paths),
        secret=identity.webhook_secret or webhook_secret(settings.data_dir, partner_id),
    )


def cert_hosts(settings: Settings) -> tuple[str, ...]:
    """Loopback, and the host of ``PROPDEV_PARTNER_URL`` when set: where the nodes reach the
    simulator when it runs on a host of its own (a container)."""
    host = urlsplit(settings.partner_url).hostname if settings.partner_url else None
    return CERT_HOSTS if host is None or host in CERT_HOSTS else (*CERT_HOSTS, host)


async def run_partner_sim(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    sim: VendorSimulator | None = None,
    api_key: str | None = None,
    partner_id: str = PARTNER_ID,
    identity: PartnerIdentity | None = None,
    protocol: str = "simulator",
) -> PartnerSimServer:
    """Start the vendor API and control API over HTTPS; ``port=0`` picks a free port. The
    vendor of ``protocol`` (``simulator``: the intercom vendor, ``acme``) is the partner
    ``identity`` names (by default partner ``partner_id`` as the data dir knows it); the other
    is its demo partner."""
    identity = identity or PartnerIdentity(partner_id, api_key=api_key)
    intercom = identity if protocol == "simulator" else PartnerIdentity(PARTNER_ID)
    acme_identity = identity if protocol == "acme" else PartnerIdentity(ACME_PARTNER_ID)
    intercom = replace(intercom, api_key=intercom.api_key or api_key)
    sim = sim or VendorSimulator()
    acme = AcmeSimulator()
    sim.signatures = sim.signatures or request_verifier(settings, intercom.partner_id)
    acme.core.signatures = request_verifier(settings, acme_identity.partner_id)
    key = intercom.api_key or vendor_api_key(settings.data_dir, intercom.partner_id)
    acme_key = acme_identity.api_key or vendor_api_key(settings.data_dir, acme_identity.partner_id)
    cert = ensure_server_cert(settings.pki_dir, cert_hosts(settings), name=CERT_NAME)
    ssl_context = server_context(settings.pki_dir, cert)
    app = make_vendor_app(sim, api_key=key)
    app.middlewares.append(acme_auth_middleware(api_key=acme_key))
    app.middlewares.append(acme_signature_middleware(acme))
    app.add_routes(acme_routes(acme))
    app.add_routes(acme_control_routes(acme))
    senders = []
    for vendor, caller in ((sim, intercom), (acme, acme_identity)):
        sender = callback_sender(settings, caller)
        if sender is not None:
            vendor.callback = sender.send
            (vendor.core if isinstance(vendor, AcmeSimulator) else vendor).drain = sender.drain
            senders.append(sender)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        for sender in senders:
            await sender.close()
        raise
    bound = runner.addresses[0][1]
    url_host = f"[{host}]" if ":" in host else host
    return PartnerSimServer(f"https://{url_host}:{bound}", sim, runner, acme, tuple(senders))


async def serve_partner_sim(
    settings: Settings,
    port: int = DEFAULT_PORT,
    *,
    host: str = "127.0.0.1",
    partner_id: str = PARTNER_ID,
    identity: PartnerIdentity | None = None,
    protocol: str = "simulator",
) -> None:
    """Run the simulator until cancelled (Ctrl-C); always closes cleanly."""
    identity = identity or PartnerIdentity(partner_id)
    server = await run_partner_sim(
        settings, host=host, port=port, identity=identity, protocol=protocol
    )
    log.info(
        "partner_sim_started",
        url=server.url,
        partner=identity.partner_id,
        protocol=protocol,
        api_key=(
            "given"
            if identity.api_key
            else str(api_key_path(settings.data_dir, identity.partner_id))
        ),
    )
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
        log.info("partner_sim_stopped", url=server.url)
