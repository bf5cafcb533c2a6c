"""A vendor as its own process: ``run.py partner-sim`` (or ``utilities-sim``) over HTTPS.

``partner_sim(data_dir, callback_url=...)`` starts the vendor simulator on a free port over a
seeded data dir (the project CA, the partners' certificates and API keys), calling the node at
``callback_url`` back as its partner; ``utilities_sim(data_dir)`` the utilities (ЖКХ) system.
Each yields a ``VendorProcess``: its URL, its control API over HTTPS (trusting the project CA
only) and the process, to stop it mid-test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.support.processes import Process, ca_file, cli_env, running, trusting


@dataclass(frozen=True, slots=True)
class VendorProcess:
    url: str
    http: aiohttp.ClientSession  # trusts the project CA
    process: Process

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        """The simulator's control API (``/sim/...``): the answer's JSON, None for a 204."""
        async with self.http.request(method, f"{self.url}{path}", json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json() if resp.status != 204 else None


@contextlib.asynccontextmanager
async def _vendor(
    name: str, args: list[str], data_dir: Path, ready: str, port: int | None, **env: str
) -> AsyncIterator[VendorProcess]:
    port = port or free_port()
    url = f"https://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(ssl=trusting(ca_file(data_dir)))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        running(
            name,
            [*args, "--port", str(port)],
            cli_env(data_dir, **env),
            data_dir / "logs",
            ready_url=f"{url}{ready}",
            ca=ca_file(data_dir),
        ) as process,
    ):
        yield VendorProcess(url, http, process)


def partner_sim(
    data_dir: Path,
    *,
    callback_url: str,
    port: int | None = None,
    partner: str = "simulator",
) -> contextlib.AbstractAsyncContextManager[VendorProcess]:
    """``run.py partner-sim --partner <partner>``: the intercom vendor (``/sim/v1``) and acme
    (``/sim/acme/v1``), calling ``callback_url`` back; its logs under ``<data_dir>/logs``."""
    return _vendor(
        f"partner-sim-{partner}",
        ["partner-sim", "--partner", partner],
        data_dir,
        "/sim/v1/faults",
        port,
        PROPDEV_CALLBACK_URL=callback_url,
    )


def utilities_sim(
    data_dir: Path, *, port: int | None = None
) -> contextlib.AbstractAsyncContextManager[VendorProcess]:
    """``run.py utilities-sim``: the utilities system, its control API at ``/sim/hcs/v1``."""
    return _vendor("utilities-sim", ["utilities-sim"], data_dir, "/sim/hcs/v1/faults", port)
