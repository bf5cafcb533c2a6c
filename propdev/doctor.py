"""``run.py doctor``: is this deployment's configuration sound? One line per check.

Read-only: it never migrates the store, creates a key or issues a certificate (a SQLite file
that does not exist is reported, not made). Checks, in order:

- ``store``: the database answers and its schema has every version this code needs; versions
  it does not know pass if all are expand steps (a newer release's, during a rolling upgrade:
  named in the detail), and fail if any is a contract step (``migrate`` refuses to start on
  them, docs/upgrades.md);
- ``clock``: the local clock against the store's (leases, tokens and audit times assume one
  time), off by at most ``MAX_SKEW`` seconds;
- ``redis``: reachable and a master (a replica refuses the writes), when configured;
- ``master key``: present, 0600/0400 and owned by this user when it is a file, and it unwraps
  every data key the store holds (the sealed data is readable with it);
- ``certificate <kind> <name>``: the CA, the server's and each partner's, valid for more than
  ``MIN_DAYS`` days and issued by the project CA; and ``certificate partner-csr <name>``: the
  latest certificate signed from each partner's CSR that is not revoked, as the store records
  it (the certificate stays with the partner), valid for more than ``MIN_DAYS`` days;
- ``public url``: https, and its host named in the server certificate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from propdev.config import Settings
from propdev.pki import ca_paths, load_cert
from propdev.security import MasterKeyError, Vault
from propdev.security.crypto import parse_master_key
from propdev.storage import (
    CURRENT_VERSION,
    MIGRATIONS,
    Database,
    Recorded,
    foreign_versions,
)
from propdev.storage.partner_certificates import KIND as PARTNER_CSR
from propdev.storage.partner_certificates import latest_not_after

MIN_DAYS = 30
MAX_SKEW = 2.0  # seconds
TIMEOUT = 5.0  # seconds for each network check


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict: its name, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


async def run_checks(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[Check]:
    """Every check against ``settings`` (``clock``/``now``: tests inject a skew or a date)."""
    db = _open_store(settings)
    signed: list[Check] = []  # certificates signed from partners' CSRs, as the store has them
    if isinstance(db, Check):
        checks = [
            db,
            _unreachable(),
            await _master_key(settings, None),
        ]
    else:
        try:
            store, reachable = await _store(db)
            checks = [
                store,
                await _clock(db, clock) if reachable else _unreachable(),
                await _master_key(settings, db if reachable else None),
            ]
            if reachable:
                signed = await _signed_certificates(db, now())
        finally:
            await db.close()
    checks.append(await _redis(settings))
    checks += _certificates(settings, now())
    checks += signed
    checks.append(_public_url(settings))
    return checks


def _unreachable() -> Check:
    return Check("clock", False, "not checked: the store is unreachable")


def doctor_command(settings: Settings) -> int:
    """Print one line per check; 0 when every one passed, 1 otherwise."""
    checks = asyncio.run(run_checks(settings))
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def settings_failure(error: Exception) -> int:
    """``run.py doctor`` when the settings themselves do not parse: one FAIL line, exit 1."""
    print(Check("settings", False, str(error)).line())
    return 1


# -- store and clock --------------------------------------------------------------------


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _open_store(settings: Settings) -> Database | Check:
    url = settings.database_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        if not path.is_file():
            return Check("store", False, f"{url}: no database file (run seed-demo or serve)")
    try:
        return Database(url)
    except Exception as exc:  # a URL SQLAlchemy cannot read: name it, do not crash
        return Check("store", False, f"{_redacted(url)}: {type(exc).__name__}: {exc}")


async def _store(db: Database) -> tuple[Check, bool]:
    """The store's verdict, and whether it answered at all."""
    where = _redacted(db.url)
    try:
        async with asyncio.timeout(TIMEOUT):
            recorded = await _recorded(db)
    except Exception as exc:  # unreachable, refused, no such table: all name the store
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("store", False, f"{where}: {first}"), False
    version = max((r.version for r in recorded), default=0)
    compatible, refused = foreign_versions(recorded)
    if refused:
        detail = (
            f"{where}: schema version {version} (newer), with versions this code may not run "
            f"on: {', '.join(map(str, refused))}"
        )
        return Check("store", False, detail), True
    missing = {v for v, _, _ in MIGRATIONS} - {r.version for r in recorded}
    if missing:
        known = max((r.version for r in recorded if r.version not in missing), default=0)
        detail = (
            f"{where}: schema version {known}, this code needs {CURRENT_VERSION}"
            " (a node migrates it at start)"
        )
        return Check("store", False, detail), True
    detail = f"{db.dialect}, schema version {version}"
    if compatible:
        newer = ", ".join(str(r.version) for r in compatible)
        detail += f" (also {newer} of a newer release: expand steps, which this code runs on)"
    return Check("store", True, detail), True


async def _recorded(db: Database) -> list[Recorded]:
    """The rows of ``schema_version``; without kinds from a store older than them."""
    try:
        rows = await db.fetch_all("SELECT version, description, kind FROM schema_version")
    except Exception:  # no kind column (a store from before the kinds), or no table at all
        rows = await db.fetch_all("SELECT version, description FROM schema_version")
        return [Recorded(int(r["version"]), str(r["description"]), None) for r in rows]
    return [Recorded(int(r["version"]), str(r["description"]), r["kind"]) for r in rows]


async def _clock(db: Database, clock: Callable[[], float]) -> Check:
    sql = (
        "SELECT EXTRACT(EPOCH FROM clock_timestamp()) AS now"
        if db.dialect == "postgresql"
        else "SELECT (julianday('now') - 2440587.5) * 86400.0 AS now"
    )
    try:
        before = clock()
        async with asyncio.timeout(TIMEOUT):
            row = await db.fetch_one(sql)
        after = clock()
    except Exception as exc:
        return Check("clock", False, f"cannot read the store's time: {exc}")
    assert row is not None
    skew = (before + after) / 2 - float(row["now"])
    detail = f"{skew:+.3f} s against the store (limit {MAX_SKEW:g} s)"
    if abs(skew) > MAX_SKEW:
        return Check("clock", False, f"skewed: {detail}; check NTP on this host and the store's")
    return Check("clock", True, detail)


# -- redis ------------------------------------------------------------------------------


async def _redis(settings: Settings) -> Check:
    if not settings.clustered:
        return Check("redis", True, "not configured: one node, in-process bus")
    from propdev.registry import close_redis, redis_client, redis_target  # imports redis

    where = redis_target(settings)
    client = redis_client(settings, socket_connect_timeout=2.0, socket_timeout=3.0)
    try:
        async with asyncio.timeout(TIMEOUT):
            info = await client.info("replication")
            server = await client.info("server")
    except Exception as exc:
        return Check("redis", False, f"{where}: {type(exc).__name__}: {exc}")
    finally:
        await close_redis(client)
    role = info.get("role", "?")
    if role != "master":
        return Check("redis", False, f"{where}: role {role}, the nodes need the master")
    return Check("redis", True, f"redis {server.get('redis_version', '?')}, role {role}")


# -- master key -------------------------------------------------------------------------


async def _master_key(settings: Settings, db: Database | None) -> Check:
    name = "master key"
    try:
        key, source = _read_master_key(settings)
    except MasterKeyError as exc:
        return Check(name, False, str(exc))
    if db is None:
        return Check(name, False, f"{source}: not checked against the sealed data (store down)")
    try:
        count = await asyncio.to_thread(Vault(db, key).check_sync)
    except MasterKeyError as exc:
        return Check(name, False, f"{source}: does not match the sealed data: {exc}")
    except Exception as exc:  # the store failed under us: already reported by "store"
        return Check(name, False, f"{source}: cannot read the data keys: {exc}")
    if count == 0:
        return Check(name, True, f"{source}; no data keys yet (the first node makes them)")
    return Check(name, True, f"{source}; unwraps the {count} stored keys")


def _read_master_key(settings: Settings) -> tuple[bytes, str]:
    if settings.master_key:
        return parse_master_key(settings.master_key, source="PROPDEV_MASTER_KEY"), (
            "from PROPDEV_MASTER_KEY"
        )
    path = settings.master_key_file or settings.data_dir / "keys" / "master.key"
    var = "PROPDEV_MASTER_KEY_FILE" if settings.master_key_file else "default"
    if not path.is_file():
        raise MasterKeyError(f"{path} ({var}): no such file; set PROPDEV_MASTER_KEY(_FILE)")
    stat = path.stat()
    if stat.st_mode & 0o077:
        raise MasterKeyError(
            f"{path}: mode {oct(stat.st_mode & 0o777)}, readable by others; chmod 600 (or 400)"
        )
    if stat.st_uid != os.geteuid():
        raise MasterKeyError(f"{path}: owned by uid {stat.st_uid}, not this user ({os.geteuid()})")
    return parse_master_key(path.read_bytes(), source=str(path)), f"{path} ({var})"


# -- certificates and the public URL -----------------------------------------------------


def _certificates(settings: Settings, now: dt.datetime) -> list[Check]:
    pki = settings.pki_dir
    ca_file = ca_paths(pki).cert
    files: list[tuple[str, Path]] = [("ca", ca_file), ("server", pki / "server" / "cert.pem")]
    partners = pki / "partners"
    if partners.is_dir():
        files += [(f"partner {p.name}", p / "cert.pem") for p in sorted(partners.iterdir())]
    try:
        ca: x509.Certificate | None = load_cert(ca_file)
    except (OSError, ValueError):
        ca = None
    return [_certificate(label, path, ca, now) for label, path in files]


def _certificate(label: str, path: Path, ca: x509.Certificate | None, now: dt.datetime) -> Check:
    name = f"certificate {label}"
    try:
        cert = load_cert(path)
    except FileNotFoundError:
        return Check(name, False, f"{path}: missing (a node issues its own at first start)")
    except (OSError, ValueError) as exc:
        return Check(name, False, f"{path}: cannot read: {exc}")
    not_after = cert.not_valid_after_utc
    days = (not_after - now).total_seconds() / 86400
    when = f"expires {not_after:%Y-%m-%d} ({days:.0f} days)"
    if ca is None:
        return Check(name, False, f"{path}: {when}; the project CA is unreadable")
    if cert != ca:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return Check(name, False, f"{path}: {when}; not issued by the project CA")
    if days < MIN_DAYS:
        return Check(name, False, f"{path}: {when}, less than {MIN_DAYS} days; renew it")
    return Check(name, True, when)


async def _signed_certificates(db: Database, now: dt.datetime) -> list[Check]:
    try:
        latest = await latest_not_after(db)
    except Exception as exc:  # a store behind the code (``store`` says so): name it, go on
        return [Check(f"certificate {PARTNER_CSR}", False, f"not read from the store: {exc}")]
    checks = []
    for name, at in sorted(latest.items()):
        not_after = dt.datetime.fromtimestamp(at, dt.UTC)
        days = (not_after - now).total_seconds() / 86400
        when = f"signed from its CSR, expires {not_after:%Y-%m-%d} ({days:.0f} days)"
        label = f"certificate {PARTNER_CSR} {name}"
        if days < MIN_DAYS:
            renew = f"POST /admin/api/v1/partners/{name}/certificate with a new CSR"
            checks.append(Check(label, False, f"{when}, less than {MIN_DAYS} days; {renew}"))
        else:
            checks.append(Check(label, True, when))
    return checks


def _san_names(cert: x509.Certificate) -> Sequence[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return [
        *(str(v) for v in san.get_values_for_type(x509.DNSName)),
        *(str(v) for v in san.get_values_for_type(x509.IPAddress)),
    ]


def _public_url(settings: Settings) -> Check:
    name = "public url"
    url = settings.public_url
    parts = urlsplit(url)
    if parts.scheme != "https":
        return Check(name, False, f"PROPDEV_PUBLIC_URL={url!r}: clients must use https")
    host = parts.hostname or ""
    path = settings.pki_dir / "server" / "cert.pem"
    try:
        names = _san_names(load_cert(path))
    except (OSError, ValueError):
        return Check(name, False, f"{url}: no server certificate to compare ({path})")
    if not _covered(host, names):
        return Check(
            name,
            False,
            f"PROPDEV_PUBLIC_URL={url}: host {host!r} is not in the server certificate "
            f"(it names {', '.join(names) or 'nothing'})",
        )
    return Check(name, True, f"{url}: https, host in the server certificate")


def _covered(host: str, names: Sequence[str]) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) in {
            ipaddress.ip_address(n) for n in names if _is_ip(n)
        }
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for name in (n.lower() for n in names if not _is_ip(n)):
        if name == host or (
            name.startswith("*.") and host.count(".") == name.count(".") and host.endswith(name[1:])
        ):
            return True
    return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
