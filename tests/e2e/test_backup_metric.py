"""The backup-late, checkpoint-late and certificate-expiring alerts' gauges: a running node
exports the time of the store's last backup, which ``backup create`` (a process of its own)
records in the store, of the last signed audit checkpoint, whichever node (or process) wrote
it, and the not-after of the certificates signed from partners' CSRs through the API."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from propdev.integrity import Checkpointer, signer_for
from propdev.storage import Database
from tests.e2e.conftest import RunningNode
from tests.support.processes import cli_env, run_cli

BACKUP = "propdev_backup_last_success_timestamp_seconds"
CHECKPOINT = "propdev_audit_checkpoint_last_timestamp_seconds"


async def gauge(node: RunningNode, name: str) -> float:
    async with node.http.get(f"{node.url}/metrics") as resp:
        assert resp.status == 200
        found = re.search(rf"^{re.escape(name)} (\S+)$", await resp.text(), re.M)
    assert found is not None, f"{name} is not exported"
    return float(found.group(1))


async def last_backup(node: RunningNode) -> float:
    return await gauge(node, BACKUP)


async def test_a_backup_made_by_the_command_shows_in_the_nodes_metrics(
    node: RunningNode, tmp_path: Path
) -> None:
    assert await last_backup(node) == 0.0  # never backed up
    made = await run_cli(
        ["backup", "create", str(tmp_path / "one.backup")], cli_env(node.settings.data_dir)
    )
    assert made.returncode == 0, str(made)
    created = dt.datetime.fromisoformat(json.loads(made.stdout)["created_at"]).timestamp()
    first = await last_backup(node)
    assert first >= created
    made = await run_cli(
        ["backup", "create", str(tmp_path / "two.backup")], cli_env(node.settings.data_dir)
    )
    assert made.returncode == 0, str(made)
    assert await last_backup(node) > first


async def test_a_checkpoint_written_elsewhere_shows_in_the_nodes_metrics(node: RunningNode) -> None:
    assert await gauge(node, CHECKPOINT) == 0.0  # none yet (the first is a minute away)
    await node.token_for("anna")  # a sign-in: an audit entry for the checkpoint to cover
    db = Database(node.settings.database_url)
    try:  # another writer of the same store: a node of the cluster, say
        written = await Checkpointer(
            db, functools.partial(signer_for, node.settings.data_dir), interval=60, clock=time.time
        ).checkpoint(force=True)
    finally:
        await db.close()
    assert written is not None
    assert await gauge(node, CHECKPOINT) == written.at


EXPIRY = "propdev_certificate_expiry_timestamp_seconds"


async def admin_call(
    node: RunningNode, token: str, method: str, path: str, body: object = None
) -> dict[str, str]:
    async with node.http.request(
        method, f"{node.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status in (200, 201), await resp.text()
        return dict(await resp.json())


async def test_a_certificate_signed_from_a_partners_csr_shows_in_the_metrics(
    node: RunningNode,
) -> None:
    operator = await node.token_for("operator")
    await admin_call(
        node,
        operator,
        "POST",
        "/admin/api/v1/partners",
        {
            "name": "vendor-m",
            "adapter": "simulator",
            "base_url": "https://vendor-m.example.net",
            "allow_ips": ["192.0.2.0/24"],
        },
    )
    series = f'{EXPIRY}{{kind="partner-csr",name="vendor-m"}}'
    async with node.http.get(f"{node.url}/metrics") as resp:
        assert series not in await resp.text()  # registered, nothing signed yet

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vendor-m")]))
        .sign(key, hashes.SHA256())
    )
    signed = await admin_call(
        node,
        operator,
        "POST",
        "/admin/api/v1/partners/vendor-m/certificate",
        {"csr_pem": csr.public_bytes(serialization.Encoding.PEM).decode()},
    )
    cert = x509.load_pem_x509_certificate(signed["certificate_pem"].encode())
    assert await gauge(node, series) == cert.not_valid_after_utc.timestamp()

    # Revoked (the partner's key leaked, say): no longer a certificate to renew.
    await admin_call(node, operator, "DELETE", "/admin/api/v1/partners/vendor-m/certificate")
    async with node.http.get(f"{node.url}/metrics") as resp:
        assert series not in await resp.text()
