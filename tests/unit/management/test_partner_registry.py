"""The partner registry: partners as rows, secrets sealed and never answered, every change
audited and announced, bad input refused with nothing stored; applied live on a node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from propdev.management import (
    SECRET_OVERLAP,
    ConflictError,
    LivePartners,
    PartnerRecord,
    PartnerRegistry,
    PartnerRequestError,
    UnknownObjectError,
)
from propdev.management.live_partners import CHANNEL
from propdev.partners import ApiKey, OAuthClient, PartnerGateway
from propdev.pki import ensure_ca
from propdev.pki.crl import current_revoked
from propdev.registry import InProcessBus
from propdev.security import vault_of
from propdev.security.crypto import key_id
from propdev.security.personal import count_stale, reencrypt
from propdev.storage import Database
from tests.unit.management.conftest import OPERATOR

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Announced:
    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, name: str) -> None:
        self.names.append(name)


def request(**more: Any) -> dict[str, Any]:
    return {
        "name": "vendor-c",
        "adapter": "simulator",
        "base_url": "https://vendor-c.example:9443",
        "allow_ips": ["198.51.100.0/24"],
        "api_key": "issued-by-vendor-c",
        **more,
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def announced() -> Announced:
    return Announced()


@pytest.fixture
def registry(db: Database, tmp_path: Path, clock: Clock, announced: Announced) -> PartnerRegistry:
    ensure_ca(tmp_path / "pki")
    return PartnerRegistry(
        db,
        adapters=lambda: ["simulator", "acme", "grpc"],
        pki_dir=tmp_path / "pki",
        announce=announced,
        clock=clock,
    )


def csr(name: str, key: Any = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    built = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM).decode()


async def actions(db: Database) -> list[tuple[str, str, str]]:
    rows = await db.fetch_all(
        "SELECT actor, action, reason FROM audit WHERE action LIKE 'partner.%' ORDER BY id"
    )
    return [(r["actor"], r["action"], r["reason"]) for r in rows]


async def test_a_partner_is_created_with_its_secret_shown_once_and_never_again(
    db: Database, registry: PartnerRegistry, announced: Announced
) -> None:
    created = await registry.create(OPERATOR, request(rate_limit=5, bulkhead=8))
    assert created["name"] == created["client_id"] == "vendor-c"
    shown = await registry.get("vendor-c")
    text = json.dumps([shown, await registry.all()])
    assert created["webhook_secret"] not in text and "issued-by-vendor-c" not in text
    assert (shown["credential"], shown["rate_limit"], shown["bulkhead"]) == ("api_key", 5, 8)
    assert shown["server_ca"] == "system" and shown["allow_ips"] == ["198.51.100.0/24"]
    # At rest: sealed, not the clear values.
    row = await db.fetch_one("SELECT * FROM partners WHERE id = 'vendor-c'")
    assert row is not None
    assert created["webhook_secret"] not in json.dumps(row, default=str)
    assert "issued-by-vendor-c" not in json.dumps(row, default=str)
    # Applied as the node needs it: opened.
    record = await registry.load("vendor-c")
    assert record is not None and record.credential == ApiKey("issued-by-vendor-c")
    assert record.secrets_at(T0) == [created["webhook_secret"]]
    # Its OAuth client, audited, announced.
    client = await db.fetch_one(
        "SELECT tls_client_auth_subject_dn AS dn, allowed_cidrs FROM oauth_clients "
        "WHERE client_id = 'vendor-c'"
    )
    assert client is not None and client["dn"] == "CN=vendor-c,O=propdev partners"
    assert await actions(db) == [(OPERATOR, "partner.create", "name=vendor-c")]
    assert announced.names == ["vendor-c"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (request(adapter="nope"), "adapter"),
        (request(base_url="http://vendor-c.example"), "base_url"),
        (request(base_url="https://user:pw@vendor-c.example"), "base_url"),
        (request(allow_ips=["not-a-network"]), "allow_ips"),
        (request(allow_ips=[]), "allow_ips"),
        (request(name="../etc"), "name"),
        (request(server_ca_pem="not pem"), "server_ca_pem"),
        (request(bulkhead=0), "bulkhead"),
        (request(rate_limit="fast"), "rate_limit"),
        (request(api_key=None, oauth={"token_url": "https://t.example/t"}), "oauth.client_id"),
        (request(oauth={"token_url": "https://t.example/t", "client_id": "a"}), "oauth"),
        (request(surprise=1), "surprise"),
        ({k: v for k, v in request().items() if k != "base_url"}, "base_url"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    db: Database, registry: PartnerRegistry, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(PartnerRequestError) as caught:
        await registry.create(OPERATOR, body)
    assert caught.value.field == field
    assert await db.fetch_one("SELECT id FROM partners WHERE id = 'vendor-c'") is None
    assert await actions(db) == []


async def test_a_name_taken_is_a_conflict_and_a_deleted_one_may_be_registered_again(
    db: Database, registry: PartnerRegistry
) -> None:
    await registry.create(OPERATOR, request())
    with pytest.raises(ConflictError):
        await registry.create(OPERATOR, request())
    await registry.delete(OPERATOR, "vendor-c")
    again = await registry.create(OPERATOR, request(adapter="acme"))
    assert (await registry.get("vendor-c"))["adapter"] == "acme"
    record = await registry.load("vendor-c")
    assert record is not None and record.secrets_at(T0) == [again["webhook_secret"]]


async def test_a_change_takes_only_the_fields_given_and_moves_the_version(
    db: Database, registry: PartnerRegistry, announced: Announced
) -> None:
    await registry.create(OPERATOR, request())
    before = await registry.get("vendor-c")
    oauth = {"token_url": "https://t.example/token", "client_id": "us", "client_secret": "s"}
    after = await registry.update(
        OPERATOR, "vendor-c", {"breaker_failures": 2, "breaker_reset": 1.5, "oauth": oauth}
    )
    assert after["version"] == before["version"] + 1
    assert (after["breaker_failures"], after["breaker_reset"]) == (2, 1.5)
    assert after["base_url"] == before["base_url"] and after["credential"] == "oauth"
    record = await registry.load("vendor-c")
    assert record is not None
    assert record.credential == OAuthClient("https://t.example/token", "us", "s", None)
    with pytest.raises(PartnerRequestError):
        await registry.update(OPERATOR, "vendor-c", {"base_url": "ftp://x"})
    with pytest.raises(UnknownObjectError):
        await registry.update(OPERATOR, "nobody", {"bulkhead": 2})
    assert (
        "operator:op-1",
        "partner.change",
        "name=vendor-c fields=breaker_failures,breaker_reset,oauth",
    ) in await actions(db)
    assert announced.names == ["vendor-c", "vendor-c"]


async def test_the_previous_webhook_secret_is_accepted_for_a_day_after_a_rotation(
    db: Database, registry: PartnerRegistry, clock: Clock
) -> None:
    first = (await registry.create(OPERATOR, request()))["webhook_secret"]
    second = (await registry.rotate_webhook_secret(OPERATOR, "vendor-c"))["webhook_secret"]
    record = await registry.load("vendor-c")
    assert record is not None
    assert record.secrets_at(T0) == [second, first]
    assert record.secrets_at(T0 + SECRET_OVERLAP - 1) == [second, first]
    assert record.secrets_at(T0 + SECRET_OVERLAP) == [second]
    # A rotation within the overlap keeps only the one it replaces.
    clock.now = T0 + 60
    third = (await registry.rotate_webhook_secret(OPERATOR, "vendor-c"))["webhook_secret"]
    record = await registry.load("vendor-c")
    assert record is not None and record.secrets_at(clock.now) == [third, second]
    assert (await registry.get("vendor-c"))["previous_webhook_secret_until"] == (
        clock.now + SECRET_OVERLAP
    )
    assert [a for _, a, _ in await actions(db)].count("partner.webhook_secret") == 2


async def test_a_csr_is_signed_renewed_and_revoked_with_the_partner(
    db: Database, registry: PartnerRegistry, tmp_path: Path
) -> None:
    await registry.create(OPERATOR, request())
    first = await registry.certificate(OPERATOR, "vendor-c", {"csr_pem": csr("vendor-c")})
    second = await registry.certificate(OPERATOR, "vendor-c", {"csr_pem": csr("vendor-c")})
    serials = [
        x509.load_pem_x509_certificate(c["certificate_pem"].encode()).serial_number
        for c in (first, second)
    ]
    shown = (await registry.get("vendor-c"))["certificates"]
    assert [c["revoked"] for c in shown] == [False, False]  # a renewal: both valid
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for bad in ({"csr_pem": csr("acme")}, {"csr_pem": csr("vendor-c", weak)}, {"pem": "x"}):
        with pytest.raises(PartnerRequestError):
            await registry.certificate(OPERATOR, "vendor-c", bad)
    assert len((await registry.get("vendor-c"))["certificates"]) == 2  # nothing stored
    await registry.delete(OPERATOR, "vendor-c")
    assert set(serials) <= current_revoked(tmp_path / "pki")
    assert await registry.load("vendor-c") is None
    assert (
        await db.fetch_one("SELECT 1 AS x FROM oauth_clients WHERE client_id = 'vendor-c'") is None
    )
    with pytest.raises(UnknownObjectError):
        await registry.get("vendor-c")
    assert [a for _, a, _ in await actions(db)] == [
        "partner.create",
        "partner.certificate",
        "partner.certificate",
        "partner.delete",
    ]


class FakeGateway:
    def __init__(self, record: PartnerRecord) -> None:
        self.record = record
        self.closed = False

    @property
    def partner_id(self) -> str:
        return self.record.name

    async def close(self) -> None:
        self.closed = True


async def test_a_node_applies_each_change_it_hears_and_drops_a_deleted_partner(
    db: Database, registry: PartnerRegistry, clock: Clock
) -> None:
    gateways: dict[str, Any] = {}
    built: list[FakeGateway] = []

    def build(record: PartnerRecord) -> PartnerGateway | None:
        gateway = FakeGateway(record)
        built.append(gateway)
        return gateway  # type: ignore[return-value]

    live = LivePartners(registry, gateways, build, retire_after=0.0, clock=clock)
    registry._announce = live.announce  # as the node wires it
    live.subscribe(InProcessBus())
    created = await registry.create(OPERATOR, request())
    assert gateways["vendor-c"] is built[0]
    assert live.webhook_secrets("vendor-c") == [created["webhook_secret"]]

    await registry.update(OPERATOR, "vendor-c", {"breaker_failures": 2})
    assert gateways["vendor-c"] is built[1] and built[1].record.breaker_failures == 2
    await live.stop()  # the retired gateway is closed, not left open
    assert built[0].closed

    await registry.delete(OPERATOR, "vendor-c")
    assert "vendor-c" not in gateways and live.webhook_secrets("vendor-c") == []


async def test_a_change_heard_after_stop_is_not_applied(
    db: Database, registry: PartnerRegistry, clock: Clock
) -> None:
    """A node stops its partners before it closes its store: what the bus still brings then
    must not start a read of the store (CI: such a read, cut off by the store's close, left a
    pooled PostgreSQL connection to the garbage collector)."""
    gateways: dict[str, Any] = {}
    live = LivePartners(registry, gateways, lambda r: FakeGateway(r), retire_after=0.0, clock=clock)  # type: ignore[arg-type,return-value]
    bus = InProcessBus()
    live.subscribe(bus)
    await live.stop()
    await registry.create(OPERATOR, request())  # announced to nobody
    await bus.publish(CHANNEL + "vendor-c", {"name": "vendor-c"})
    assert gateways == {} and not live._tasks


async def test_a_node_that_missed_a_message_catches_up_when_it_reconciles(
    db: Database, registry: PartnerRegistry, clock: Clock
) -> None:
    gateways: dict[str, Any] = {}
    live = LivePartners(
        registry,
        gateways,
        lambda r: FakeGateway(r),
        retire_after=0.0,
        clock=clock,  # type: ignore[arg-type,return-value]
    )
    await registry.create(OPERATOR, request())  # announced to nobody
    assert gateways == {}
    await live.reconcile()
    assert set(gateways) >= {"vendor-c"}
    await registry.delete(OPERATOR, "vendor-c")
    await live.reconcile()
    assert "vendor-c" not in gateways
    await live.stop()


async def test_a_data_key_rotation_reseals_partners_secrets_which_still_open(
    db: Database, registry: PartnerRegistry
) -> None:
    created = await registry.create(OPERATOR, request())
    await registry.rotate_webhook_secret(OPERATOR, "vendor-c")
    vault = vault_of(db)
    old = vault.primary_kid
    new = await asyncio.to_thread(vault.rotate)
    assert (await count_stale(db, vault)).get(old, 0) >= 3
    await asyncio.to_thread(reencrypt, db, vault)
    row = await db.fetch_one(
        "SELECT credential_sealed, webhook_secret_sealed, previous_secret_sealed FROM partners "
        "WHERE id = 'vendor-c'"
    )
    assert row is not None and {key_id(v) for v in row.values()} == {new}
    record = await registry.load("vendor-c")
    assert record is not None and record.credential == ApiKey("issued-by-vendor-c")
    assert created["webhook_secret"] in record.secrets_at(T0)
