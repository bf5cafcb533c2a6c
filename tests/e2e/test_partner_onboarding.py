"""A vendor onboarded as data, against running processes, no node restarted.

The node is ``run.py serve``; the new vendor is ``run.py partner-sim`` started as the partner
the admin API registered: ``--partner vendor-c --client-cert … --client-key … --webhook-secret …
--api-key …``, with a client certificate signed from a CSR this test made (the key never leaves
the test). A door on it opens, the vendor's entry callback reaches the resident, the webhook
secret is rotated with no callback lost (the vendor still signing with the old one during the
overlap, then restarted with the new one), and once the partner is deleted the node stops
calling it and refuses its callbacks. The node process is the same one throughout.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from propdev.pki import CertPaths
from tests.conftest import free_port
from tests.support.eventually import eventually
from tests.support.oauth_client import login
from tests.support.partner import event, partner_client
from tests.support.processes import Process, ca_file, cli_env, run_cli, running, trusting

pytestmark = pytest.mark.slow

VENDOR = "vendor-c"
DOOR = "ap-c-door"
DEVICE = "sim-door-2"
API_KEY = "vendor-c-issued-key-0123456789"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csr_for(name: str, key: ec.EllipticCurvePrivateKey) -> str:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Hub:
    http: aiohttp.ClientSession
    url: str
    node: Process
    data_dir: Path
    logs: Path
    creds: dict[str, Any]
    operator: str = ""

    async def call(self, method: str, path: str, body: Any = None, token: str = "") -> Any:
        async with self.http.request(
            method, f"{self.url}{path}", json=body, headers=bearer(token or self.operator)
        ) as resp:
            answer = await resp.json() if resp.status != 204 else None
            return resp.status, answer

    async def token_of(self, username: str) -> str:
        if username == self.creds["operator"]["username"]:
            who = self.creds["operator"]
        else:
            who = next(r for r in self.creds["residents"] if r["username"] == username)
        tokens = await login(
            self.http,
            self.url,
            client_id=self.creds["mobile_client_id"],
            redirect_uri=self.creds["redirect_uri"],
            username=username,
            password=who["password"],
            totp_secret=who.get("totp_secret"),
        )
        return str(tokens["access_token"])


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    seeded = await run_cli(["seed-demo"], cli_env(data_dir))
    assert seeded.returncode == 0, str(seeded)
    creds = json.loads((data_dir / "demo-credentials.json").read_text())
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    env = cli_env(data_dir, PROPDEV_PORT=str(port), PROPDEV_RATE_LIMIT="0")
    connector = aiohttp.TCPConnector(ssl=trusting(ca_file(data_dir)))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        running(
            "node", ["serve"], env, logs, ready_url=f"{url}/healthz", ca=ca_file(data_dir)
        ) as node,
    ):
        hub = Hub(http, url, node, data_dir, logs, creds)
        hub.operator = await hub.token_of(creds["operator"]["username"])
        yield hub


@contextlib.asynccontextmanager
async def vendor_process(
    hub: Hub, port: int, cert: CertPaths, secret: str, name: str = "vendor-c"
) -> AsyncIterator[str]:
    url = f"https://127.0.0.1:{port}"
    args = [
        "partner-sim",
        "--port",
        str(port),
        "--partner",
        VENDOR,
        "--client-cert",
        str(cert.cert),
        "--client-key",
        str(cert.key),
        "--webhook-secret",
        secret,
        "--api-key",
        API_KEY,
        "--callback-url",
        hub.url,
    ]
    async with running(
        name,
        args,
        cli_env(hub.data_dir),
        hub.logs,
        ready_url=f"{url}/sim/v1/faults",
        ca=ca_file(hub.data_dir),
    ):
        async with hub.http.post(f"{url}/sim/v1/passages", json={"after_open_ms": 20}) as resp:
            assert resp.status == 200
        yield url


async def open_and_see_entry(hub: Hub, token: str, sim_url: str) -> str:
    """Open the door; the vendor's entry callback for that command reaches the resident."""
    status, opened = await hub.call("POST", f"/api/v1/access-points/{DOOR}/open", token=token)
    assert status == 200, opened
    async with hub.http.post(f"{sim_url}/sim/v1/callbacks/flush") as resp:
        assert resp.status == 204

    async def entry() -> dict[str, Any] | None:
        _, events = await hub.call("GET", "/api/v1/events", token=token)
        found = [
            e
            for e in events
            if e["type"] == "access.entry" and e.get("command_id") == opened["command_id"]
        ]
        return found[0] if found else None

    await eventually(entry, within=10.0, what=f"the entry of {opened['command_id']}")
    return str(opened["command_id"])


async def test_a_vendor_registered_through_the_api_opens_calls_back_and_rotates_its_secret(
    hub: Hub, tmp_path: Path
) -> None:
    node_pid = hub.node.pid
    sim_port = free_port()
    ca_pem = ca_file(hub.data_dir).read_text()

    # Registered through the API: its secret shown once, never read back.
    status, created = await hub.call(
        "POST",
        "/admin/api/v1/partners",
        {
            "name": VENDOR,
            "adapter": "simulator",
            "base_url": f"https://127.0.0.1:{sim_port}",
            "allow_ips": ["127.0.0.0/8", "::1/128"],
            "server_ca_pem": ca_pem,
            "api_key": API_KEY,
            "breaker_failures": 3,
        },
    )
    assert status == 201, created
    assert created["client_id"] == VENDOR and len(created["webhook_secret"]) >= 32
    status, shown = await hub.call("GET", f"/admin/api/v1/partners/{VENDOR}")
    assert status == 200 and shown["credential"] == "api_key"
    assert created["webhook_secret"] not in json.dumps(shown) and API_KEY not in json.dumps(shown)

    # Its certificate from a CSR: the key stays here. A CSR for another name is refused.
    key = ec.generate_private_key(ec.SECP256R1())
    status, refused = await hub.call(
        "POST", f"/admin/api/v1/partners/{VENDOR}/certificate", {"csr_pem": csr_for("acme", key)}
    )
    assert (status, refused["field"]) == (400, "csr_pem"), refused
    status, signed = await hub.call(
        "POST", f"/admin/api/v1/partners/{VENDOR}/certificate", {"csr_pem": csr_for(VENDOR, key)}
    )
    assert status == 201, signed
    assert signed["ca_pem"] == ca_pem
    cert = CertPaths(tmp_path / "vendor-c.pem", tmp_path / "vendor-c.key")
    cert.cert.write_text(signed["certificate_pem"])
    cert.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    # A door on it, which anna may open.
    status, point = await hub.call(
        "POST",
        "/admin/api/v1/access-points",
        {
            "id": DOOR,
            "name": "Vendor C door",
            "kind": "door",
            "building_id": "bld-a",
            "partner": VENDOR,
            "device_id": DEVICE,
        },
    )
    assert status == 201, point
    anna_id = next(r for r in hub.creds["residents"] if r["username"] == "anna")["id"]
    status, granted = await hub.call("PUT", f"/admin/api/v1/rights/{anna_id}/{DOOR}")
    assert status in (200, 201, 204), granted
    token = await hub.token_of("anna")

    commands: list[str] = []
    first_secret = created["webhook_secret"]
    async with vendor_process(hub, sim_port, cert, first_secret) as sim_url:
        commands.append(await open_and_see_entry(hub, token, sim_url))
        async with hub.http.get(f"{sim_url}/sim/v1/commands") as resp:
            received = await resp.json()
        assert [c["device_id"] for c in received] == [DEVICE]

        # Rotated: the vendor, still signing with the old secret, is accepted in the overlap.
        status, rotated = await hub.call("POST", f"/admin/api/v1/partners/{VENDOR}/webhook-secret")
        assert status == 201 and rotated["webhook_secret"] != first_secret
        commands.append(await open_and_see_entry(hub, token, sim_url))

    # The vendor switches to the new secret (its own restart; ours never).
    async with vendor_process(hub, sim_port, cert, rotated["webhook_secret"], "vendor-c-2") as url:
        commands.append(await open_and_see_entry(hub, token, url))

        # Every callback arrived: one entry per open, none lost across the rotation.
        _, events = await hub.call("GET", "/api/v1/events", token=token)
        entries = [e["command_id"] for e in events if e["type"] == "access.entry"]
        assert sorted(c for c in entries if c in commands) == sorted(commands)

        # A token the partner got before its deletion no longer carries its callbacks.
        async with partner_client(hub.url, hub.data_dir, VENDOR, cert=cert) as partner:
            partner_token = await partner.token()
            status, _ = await hub.call("DELETE", f"/admin/api/v1/partners/{VENDOR}")
            assert status == 204
            status, answer = await partner.post(
                [event(DEVICE, "device_online")],
                token=partner_token,
                secret=rotated["webhook_secret"],
            )
            assert status in (401, 403), answer

        # Not called any more: the door answers without reaching the vendor.
        async with hub.http.get(f"{url}/sim/v1/commands") as resp:
            before = len(await resp.json())
        status, body = await hub.call("POST", f"/api/v1/access-points/{DOOR}/open", token=token)
        assert (status, body["type"].rsplit("/", 1)[-1]) == (502, "partner-unavailable"), body
        async with hub.http.get(f"{url}/sim/v1/commands") as resp:
            assert len(await resp.json()) == before

    assert hub.node.pid == node_pid and hub.node.returncode is None  # no node restarted
