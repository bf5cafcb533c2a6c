"""What a node pays for at start: the serve path leaves unconfigured subsystems (and the dev
kit) unimported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from propdev.security.passwords import verify_password

# Run in a fresh interpreter: this process has imported everything the other tests use.
_PROBE = """
import json, sys
import propdev.cli, propdev.node, propdev.http.app
from propdev.security import passwords
from propdev.storage.db import Database
Database("sqlite:///:memory:")  # the embedded store: served by its own threads
loaded = [
    m
    for m in ("grpc", "google.protobuf", "propdev.grpc.server", "sqlalchemy.ext.asyncio",
              "sqlalchemy.orm", "propdev.devkit")
    if m in sys.modules
]
print(json.dumps({"loaded": loaded, "dummy_hashes": passwords._dummy_hash.cache_info().currsize}))
"""


@pytest.fixture(scope="module")
def serve_path() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_serve_path_imports_neither_grpc_unless_configured_nor_sqlalchemy_asyncio_on_sqlite(
    serve_path: dict[str, object],
) -> None:
    assert serve_path["loaded"] == []


def test_no_argon2_hash_is_computed_at_import(serve_path: dict[str, object]) -> None:
    assert serve_path["dummy_hashes"] == 0


def test_the_grpc_server_is_still_reachable_from_the_package() -> None:
    import propdev.grpc

    assert propdev.grpc.start_grpc_server.__module__ == "propdev.grpc.server"
    assert propdev.grpc.GrpcServer.__name__ == "GrpcServer"
    with pytest.raises(AttributeError):
        propdev.grpc.no_such_name  # noqa: B018


def test_an_unknown_user_still_fails_verification_against_the_lazy_dummy_hash() -> None:
    assert verify_password(None, "propdev-dummy-password-for-timing") is False
    assert verify_password(None, "anything") is False
