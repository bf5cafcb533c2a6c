"""The node's HTTPS listener: the aiohttp app behind TLS that reloads without downtime, with a cap
on open connections per client address. The node (``propdev.node.serve``) starts and stops it."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

from aiohttp import web

from propdev.config import Settings
from propdev.http.connections import CappedTCPSite, ConnectionCap
from propdev.http.limits import server_limits
from propdev.pki import CertPaths, server_context
from propdev.pki.reload import TLSReloader

RouteDefs = list[web.RouteDef]
"""Routes another part hands the front end (the dev kit's simulator control API)."""


class HttpsListener:
    """``start`` binds ``settings.host:port``; ``stop`` stops serving without failing a request
    (idempotent)."""

    SHUTDOWN_WITHIN = 15.0
    """How long ``stop`` waits for the requests in flight (an open's deadline is shorter)."""

    def __init__(self, app: web.Application, settings: Settings, server_cert: CertPaths) -> None:
        self.settings = settings
        self.runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.SHUTDOWN_WITHIN,
            **server_limits(header_timeout=settings.header_timeout),
        )
        # Partners' certificates are checked against the CA's CRL; both reload without downtime.
        self.tls = TLSReloader(
            lambda: server_context(settings.pki_dir, server_cert), settings.pki_dir, server_cert
        )
        self._cap: ConnectionCap | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        await self.runner.setup()
        # At most PROPDEV_CONNECTIONS_PER_IP open connections per client address (floods).
        self._cap = ConnectionCap(
            self.settings.connections_per_ip,
            exempt=[ipaddress.ip_network(cidr) for cidr in self.settings.connections_exempt],
        )
        site = CappedTCPSite(
            self.runner,
            self.settings.host,
            self.settings.port,
            ssl_context=self.tls.ctx,
            backlog=1024,
            cap=self._cap,
        )
        self._watcher = asyncio.create_task(self.tls.watch())
        await site.start()

    def install_sighup(self) -> None:
        """Certificate and CRL rotation on SIGHUP, without downtime."""
        self.tls.install_sighup()

    async def stop(self) -> None:
        """In order: refuse new connections (the listening socket is closed; one still in its
        TLS handshake is closed unanswered when it completes, so its client retries at another
        node), close the WebSockets with 1012 (``on_shutdown``) and the idle keep-alive
        connections, wait for the requests in flight (at most ``SHUTDOWN_WITHIN`` seconds,
        then they are cancelled), run the app's cleanup. What aiohttp raises is raised."""
        if self._stopped:
            return
        self._stopped = True
        self.tls.remove_sighup()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._cap is not None:
            self._cap.close()
        await self.runner.cleanup()
