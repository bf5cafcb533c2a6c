"""``run.py doctor``: passes on a healthy deployment and names each broken setting."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from propdev import observability
from propdev.cli import main
from propdev.config import Settings
from propdev.devkit import seed_demo
from propdev.doctor import MIN_DAYS, Check, run_checks
from propdev.pki import ca as ca_module
from propdev.pki import ensure_server_cert, issue_partner_cert
from propdev.storage import Database
from tests.conftest import free_port
from tests.support.postgres import fresh_database

REDIS_URL = "redis://127.0.0.1:6379/0"


def settings_for(data_dir: Path, **extra: str) -> Settings:
    return Settings.from_env(
        {"PROPDEV_DATA_DIR": str(data_dir), "PROPDEV_LOG_LEVEL": "warning", **extra}
    )


def seeded(settings: Settings) -> None:
    """What a node's first start leaves: the demo estate, the keys, the server certificate."""
    from argon2 import PasswordHasher

    from propdev.security import passwords

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            passwords, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        )
        passwords._dummy_hash.cache_clear()
        asyncio.run(seed_demo(settings))
    passwords._dummy_hash.cache_clear()
    ensure_server_cert(settings.pki_dir, ("127.0.0.1", "localhost"))


@pytest.fixture(scope="module")
def healthy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("healthy")
    seeded(settings_for(data_dir))
    return data_dir


@pytest.fixture
def data_dir(healthy_dir: Path, tmp_path: Path) -> Path:
    """A copy of the healthy data dir, for a test to break."""
    copy = tmp_path / "data"
    shutil.copytree(healthy_dir, copy)
    return copy


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def failures(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.ok}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for var in [v for v in os.environ if v.startswith("PROPDEV_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("PROPDEV_LOG_LEVEL", "warning")
    # run.py configures process-wide logging onto this test's captured stdout: not here.
    monkeypatch.setattr(observability, "configure_logging", lambda *args, **kwargs: None)
    yield monkeypatch


def test_a_healthy_sqlite_node_passes_every_check_and_the_command_exits_zero(
    data_dir: Path, environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = asyncio.run(run_checks(settings_for(data_dir)))
    assert failures(checks) == {}
    names = set(by_name(checks))
    assert {"store", "clock", "redis", "master key", "public url"} <= names
    assert {"certificate ca", "certificate server", "certificate partner simulator"} <= names
    environ.setenv("PROPDEV_DATA_DIR", str(data_dir))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("OK   store: sqlite, schema version")
    assert not [line for line in out if line.startswith("FAIL")]


def test_a_healthy_postgresql_and_redis_deployment_passes(tmp_path: Path) -> None:
    with fresh_database() as url:
        settings = settings_for(tmp_path, PROPDEV_DATABASE_URL=url, PROPDEV_REDIS_URL=REDIS_URL)
        seeded(settings)
        checks = by_name(asyncio.run(run_checks(settings)))
    assert [c for c in checks.values() if not c.ok] == []
    assert checks["store"].detail.startswith("postgresql, schema version")
    assert "role master" in checks["redis"].detail


def test_an_unreachable_database_url_fails_the_store_and_exits_non_zero(
    data_dir: Path, environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://propdev:secret@127.0.0.1:{free_port()}/propdev"
    environ.setenv("PROPDEV_DATA_DIR", str(data_dir))
    environ.setenv("PROPDEV_DATABASE_URL", url)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    store = next(line for line in out.splitlines() if " store: " in line)
    assert store.startswith("FAIL store: postgresql://propdev:***@127.0.0.1:")
    assert "secret" not in out
    assert "FAIL clock: not checked" in out


def test_a_missing_sqlite_file_is_named_and_not_created(data_dir: Path) -> None:
    missing = data_dir / "elsewhere" / "propdev.db"
    checks = failures(
        asyncio.run(run_checks(settings_for(data_dir, PROPDEV_DATABASE_URL=f"sqlite:///{missing}")))
    )
    assert "no database file" in checks["store"]
    assert not missing.parent.exists()


def test_a_store_behind_the_code_names_both_schema_versions(data_dir: Path) -> None:
    async def drop_last_version() -> None:
        db = Database(settings_for(data_dir).database_url)
        try:
            await db.execute(
                "DELETE FROM schema_version"
                " WHERE version = (SELECT MAX(version) FROM schema_version)"
            )
        finally:
            await db.close()

    asyncio.run(drop_last_version())
    from propdev.storage import CURRENT_VERSION
    from propdev.storage.migrations import MIGRATIONS

    # The one before the last: versions are not contiguous (branches own numbers apart).
    found = failures(asyncio.run(run_checks(settings_for(data_dir))))
    assert f"this code needs {CURRENT_VERSION}" in found["store"]
    before = max(v for v, _, _ in MIGRATIONS if v < CURRENT_VERSION)  # versions have gaps
    assert f"schema version {before}," in found["store"]


def record_version(data_dir: Path, version: int, description: str, kind: str) -> None:
    """Record ``version`` as a newer release applying it would (its statements do not matter
    to the doctor)."""

    async def insert() -> None:
        db = Database(settings_for(data_dir).database_url)
        try:
            await db.execute(
                "INSERT INTO schema_version (version, description, kind) VALUES (:v, :d, :k)",
                v=version,
                d=description,
                k=kind,
            )
        finally:
            await db.close()

    asyncio.run(insert())


def test_a_newer_releases_expand_steps_pass_and_are_named(data_dir: Path) -> None:
    from propdev.storage import CURRENT_VERSION

    newer = CURRENT_VERSION + 7
    record_version(data_dir, newer, "a table only the next release uses", "expand")

    checks = by_name(asyncio.run(run_checks(settings_for(data_dir))))

    assert checks["store"].ok, checks["store"].detail
    assert checks["store"].detail == (
        f"sqlite, schema version {newer}"
        f" (also {newer} of a newer release: expand steps, which this code runs on)"
    )


def test_a_newer_releases_contract_step_fails_naming_it(data_dir: Path) -> None:
    from propdev.storage import CURRENT_VERSION

    record_version(data_dir, CURRENT_VERSION + 7, "a table only the next release uses", "expand")
    record_version(data_dir, CURRENT_VERSION + 8, "the audit index dropped", "contract")

    found = failures(asyncio.run(run_checks(settings_for(data_dir))))

    assert f"schema version {CURRENT_VERSION + 8} (newer)" in found["store"]
    assert found["store"].endswith(
        f"may not run on: {CURRENT_VERSION + 8} (contract: the audit index dropped)"
    )


def test_redis_down_or_on_the_wrong_port_is_named(data_dir: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    found = failures(asyncio.run(run_checks(settings_for(data_dir, PROPDEV_REDIS_URL=url))))
    assert list(found) == ["redis"]
    assert found["redis"].startswith(url + ": ")


def test_another_master_key_does_not_match_the_sealed_data(data_dir: Path) -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    found = failures(asyncio.run(run_checks(settings_for(data_dir, PROPDEV_MASTER_KEY=other))))
    assert list(found) == ["master key"]
    assert "does not match the sealed data" in found["master key"]


def test_a_master_key_file_readable_by_others_fails(data_dir: Path) -> None:
    key = data_dir / "keys" / "master.key"
    key.chmod(0o644)
    found = failures(asyncio.run(run_checks(settings_for(data_dir))))
    assert list(found) == ["master key"]
    assert f"{key}: mode 0o644" in found["master key"]
    key.chmod(0o400)
    assert failures(asyncio.run(run_checks(settings_for(data_dir)))) == {}


def test_a_missing_master_key_file_is_named(data_dir: Path) -> None:
    missing = data_dir / "secrets" / "master.key"
    settings = settings_for(data_dir, PROPDEV_MASTER_KEY_FILE=str(missing))
    found = failures(asyncio.run(run_checks(settings)))
    assert found["master key"].startswith(f"{missing} (PROPDEV_MASTER_KEY_FILE): no such file")


def test_a_certificate_expiring_within_thirty_days_fails(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ca_module, "LEAF_DAYS", MIN_DAYS - 10)
    issue_partner_cert(data_dir / "pki", "shortlived")
    found = failures(asyncio.run(run_checks(settings_for(data_dir))))
    assert list(found) == ["certificate partner shortlived"]
    assert f"less than {MIN_DAYS} days" in found["certificate partner shortlived"]


def test_a_skewed_clock_is_named_with_its_offset(data_dir: Path) -> None:
    settings = settings_for(data_dir)
    found = failures(asyncio.run(run_checks(settings, clock=lambda: time.time() + 120)))
    assert list(found) == ["clock"]
    assert found["clock"].startswith("skewed: +12")


def test_a_plain_http_public_url_is_named(
    data_dir: Path, environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environ.setenv("PROPDEV_DATA_DIR", str(data_dir))
    environ.setenv("PROPDEV_PUBLIC_URL", "http://127.0.0.1:8443")
    assert main(["doctor"]) == 1
    assert capsys.readouterr().out.startswith(
        "FAIL settings: PROPDEV_PUBLIC_URL='http://127.0.0.1:8443': "
        "expected a URL starting with https"
    )


def test_a_public_host_the_server_certificate_does_not_name_fails(data_dir: Path) -> None:
    settings = settings_for(data_dir, PROPDEV_PUBLIC_URL="https://doors.example.net")
    found = failures(asyncio.run(run_checks(settings)))
    assert list(found) == ["public url"]
    assert "host 'doors.example.net' is not in the server certificate" in found["public url"]
    assert "127.0.0.1" in found["public url"]


async def _sign_for_partners(settings: Settings, *, days: dict[str, int]) -> None:
    """Register each partner and sign a CSR of its own for it, valid ``days[name]`` days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from propdev.management import PartnerRegistry
    from propdev.security import open_vault

    async def announce(name: str) -> None:
        return None

    db = Database(settings.database_url)
    try:
        await open_vault(settings, db)
        registry = PartnerRegistry(
            db, adapters=lambda: ["simulator"], pki_dir=settings.pki_dir, announce=announce
        )
        for name, valid in days.items():
            await registry.create(
                "operator:test",
                {
                    "name": name,
                    "adapter": "simulator",
                    "base_url": f"https://{name}.example.net",
                    "allow_ips": ["192.0.2.0/24"],
                },
            )
            key = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .sign(key, hashes.SHA256())
            )
            registry.certificate_days = valid
            pem = csr.public_bytes(serialization.Encoding.PEM).decode()
            await registry.certificate("operator:test", name, {"csr_pem": pem})
        await registry.revoke_certificates("operator:test", "revoked")
    finally:
        await db.close()


def test_certificates_signed_from_partners_csrs_are_checked_from_the_store(
    data_dir: Path,
) -> None:
    settings = settings_for(data_dir)
    days = {"longlived": 365, "shortlived": MIN_DAYS - 10, "revoked": MIN_DAYS - 10}
    asyncio.run(_sign_for_partners(settings, days=days))
    checks = by_name(asyncio.run(run_checks(settings)))
    longlived = checks["certificate partner-csr longlived"]
    assert longlived.ok and longlived.detail.startswith("signed from its CSR, expires")
    assert "(365 days)" in longlived.detail or "(364 days)" in longlived.detail
    assert "certificate partner-csr revoked" not in checks  # revoked: no longer in use
    found = failures(list(checks.values()))
    assert list(found) == ["certificate partner-csr shortlived"]
    assert f"less than {MIN_DAYS} days" in found["certificate partner-csr shortlived"]
    assert (
        "/admin/api/v1/partners/shortlived/certificate"
        in found["certificate partner-csr shortlived"]
    )
