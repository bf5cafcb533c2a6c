"""Certificate and CRL rotation without downtime.

``TLSReloader`` owns the server ``SSLContext`` the listener was started with and loads the
server certificate and the CRL into that same object again: new handshakes use the new
material, connections already open keep theirs. It reloads on SIGHUP (``install_sighup``) and
when the files change (``watch``, polling their modification times).
"""

from __future__ import annotations

import asyncio
import signal
import ssl
from pathlib import Path

import structlog

from propdev.pki.ca import CertPaths
from propdev.pki.crl import crl_path, ensure_crl

log = structlog.get_logger()


class TLSReloader:
    def __init__(self, ctx: ssl.SSLContext, pki_dir: Path, server: CertPaths) -> None:
        self.ctx = ctx
        self.pki_dir = pki_dir
        self.server = server
        self.reloads = 0
        self._stamps: tuple[float, ...] = ()

    def _files(self) -> tuple[Path, ...]:
        return (self.server.cert, self.server.key, crl_path(self.pki_dir))

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in self._files())

    def load_crl(self) -> None:
        """Load (or refresh) the CRL and turn on leaf CRL checking for client certificates."""
        path = ensure_crl(self.pki_dir)
        self.ctx.load_verify_locations(cafile=str(path))
        self.ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF

    def reload(self) -> bool:
        """Load the certificate, key and CRL again; False (and the old ones kept) on error."""
        try:
            self.ctx.load_cert_chain(self.server.cert, self.server.key)
            self.load_crl()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("tls_reload_failed", error=str(exc))
            return False
        self._stamps = self._mtimes()
        self.reloads += 1
        log.info("tls_reloaded", reloads=self.reloads)
        return True

    def changed(self) -> bool:
        return self._mtimes() != self._stamps

    async def watch(self, interval: float = 2.0) -> None:
        """Reload whenever a file changed; runs until cancelled."""
        self._stamps = self._stamps or self._mtimes()
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
