"""Certificate and CRL rotation without downtime.

The listener keeps one ``SSLContext`` for its whole life, but each handshake is moved, from
its SNI callback (which OpenSSL calls with or without a server name), onto the *current*
context: ``reload()`` builds a new one from the files -- server certificate, project CA,
CRL with ``VERIFY_CRL_CHECK_LEAF`` -- and new handshakes use it; open connections keep theirs.
(Loading a newer CRL into the same context would not work: OpenSSL's store treats a second
CRL from the same issuer as a duplicate and keeps the first.)

It reloads on SIGHUP (``install_sighup``) and when the files change (``watch``).
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Callable
from pathlib import Path

import structlog

from propdev.pki.ca import CertPaths
from propdev.pki.crl import crl_path, ensure_crl

log = structlog.get_logger()


class TLSReloader:
    def __init__(
        self, factory: Callable[[], ssl.SSLContext], pki_dir: Path, server: CertPaths
    ) -> None:
        self.factory = factory
        self.pki_dir = pki_dir
        self.server = server
        self.reloads = 0
        self.current = self._build()
        self.ctx = self._build()  # the listener's; hands each handshake to ``current``
        self.ctx.sni_callback = self._select
        self._stamps = self._mtimes()

    def _build(self) -> ssl.SSLContext:
        ctx = self.factory()
        ctx.load_verify_locations(cafile=str(ensure_crl(self.pki_dir)))
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        return ctx

    def _select(
        self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        ssl_object.context = self.current

    def _files(self) -> tuple[Path, ...]:
        return (self.server.cert, self.server.key, crl_path(self.pki_dir))

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in self._files())

    def reload(self) -> bool:
        """Build a context from the files again; False (and the old one kept) on error."""
        try:
            fresh = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("tls_reload_failed", error=str(exc))
            return False
        self.current = fresh
        self._stamps = self._mtimes()
        self.reloads += 1
        log.info("tls_reloaded", reloads=self.reloads)
        return True

    def changed(self) -> bool:
        return self._mtimes() != self._stamps

    async def watch(self, interval: float = 2.0) -> None:
        """Reload whenever a file changed (and the CRL before it expires); until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                self.reload()

    def install_sighup(self) -> bool:
        """Reload on SIGHUP; False where signals cannot be handled (not the main thread)."""
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True

    def remove_sighup(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
