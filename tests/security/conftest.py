"""The attack suite's fixtures: a real node over TLS (the e2e fixture), tuned limits, helpers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.pki import ca_paths
from tests.e2e.conftest import RunningNode, node_settings, running_node


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A node whose limits are small enough to reach in a test."""
    settings = node_settings(
        tmp_path,
        PROPDEV_HEADER_TIMEOUT="1",
        PROPDEV_BODY_TIMEOUT="1",
        PROPDEV_WS_PER_USER="2",
        PROPDEV_AUTH_FAILURES_PER_IP="50",
    )
    async with running_node(settings) as running:
        yield running


def tls_client(
    node: RunningNode, *, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client context trusting the project CA only, like the app or a partner."""
    ctx = ssl.create_default_context(cafile=str(ca_paths(node.settings.pki_dir).cert))
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx
