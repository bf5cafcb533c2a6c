"""Nodes of one machine that share a PKI folder and start together issue one server
certificate between them, and its key is the one beside it (the issuing lock of
``propdev.pki.ca``: before it, two nodes could write one's key beside the other's
certificate, or rename each other's temporary file away)."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.synchronize import Barrier
from pathlib import Path

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from propdev.pki import ensure_server_cert
from propdev.pki.ca import load_cert

NODES = 6


def _start_node(pki_dir: str, barrier: Barrier, seen: mp.Queue) -> None:  # type: ignore[type-arg]
    barrier.wait()  # every node checks the empty folder at the same moment
    try:
        paths = ensure_server_cert(Path(pki_dir))
        seen.put(load_cert(paths.cert).serial_number)
    except Exception as exc:  # reported, not lost with the process
        seen.put(repr(exc))


def test_nodes_starting_together_issue_one_matching_certificate(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    barrier, seen = ctx.Barrier(NODES), ctx.Queue()
    nodes = [
        ctx.Process(target=_start_node, args=(str(tmp_path), barrier, seen)) for _ in range(NODES)
    ]
    for node in nodes:
        node.start()
    serials = [seen.get(timeout=60) for _ in nodes]
    for node in nodes:
        node.join(timeout=60)
        assert node.exitcode == 0

    assert all(isinstance(s, int) for s in serials), serials  # no node failed to start
    assert len(set(serials)) == 1, "each node must end up with the one certificate issued"
    cert = load_cert(tmp_path / "server" / "cert.pem")
    key = load_pem_private_key((tmp_path / "server" / "key.pem").read_bytes(), password=None)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file left behind
