"""Who may call ``/partner/v1``: the four proofs of ``check_partner`` one by one, and the CRL
check of ``authenticate_partner`` on a connection that is already open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from propdev.http.errors import ForbiddenError, UnauthorizedError
from propdev.http.middlewares import PRINCIPAL
from propdev.http.partner_auth import (
    PartnerCaller,
    authenticate_partner,
    check_partner,
)
from propdev.http.principal import Principal
from propdev.pki.ca import ensure_ca, issue_partner_cert, load_cert, partner_subject_dn
from propdev.pki.crl import revoke_partner
from propdev.security import address_in, certificate_thumbprint, register_partner_client
from propdev.storage import Database, migrate
from propdev.storage.directory import Directory

ACME = "acme"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/partner-auth.db")
    try:
        await migrate(database)
        yield database
    finally:
        await database.close()


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    pki_dir = tmp_path / "pki"
    ensure_ca(pki_dir)
    return pki_dir


def der(pki: Path, name: str) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return load_cert(issue_partner_cert(pki, name).cert).public_bytes(Encoding.DER)


async def register(
    db: Database,
    name: str = ACME,
    *,
    partner_cidrs: list[str] | None = None,
    client_cidrs: list[str] | None = None,
    subject_dn: str | None = None,
) -> None:
    await Directory(db).put_partner(
        name, name, "vendor", ["10.0.0.0/8"] if partner_cidrs is None else partner_cidrs
    )
    await register_partner_client(
        db,
        name,
        subject_dn=partner_subject_dn(name) if subject_dn is None else subject_dn,
        allowed_cidrs=["10.1.0.0/16"] if client_cidrs is None else client_cidrs,
    )


def token(
    cert: bytes | None,
    *,
    client_id: str = ACME,
    roles: tuple[str, ...] = ("partner",),
    cnf: Any = "bound",
) -> Principal:
    claims: dict[str, Any] = {"sub": client_id, "client_id": client_id, "roles": list(roles)}
    if cnf == "bound":
        assert cert is not None
        claims["cnf"] = {"x5t#S256": certificate_thumbprint(cert)}
    elif cnf is not None:
        claims["cnf"] = cnf
    return Principal.from_claims(claims)


async def test_a_partner_with_its_certificate_a_bound_token_and_an_allowed_address_gets_in(
    db: Database, pki: Path
) -> None:
    await register(db)
    cert = der(pki, ACME)
    caller = await check_partner(db, cert=cert, caller=token(cert), remote="10.1.2.3")
    assert caller == PartnerCaller(ACME, "10.1.2.3")


async def test_no_client_certificate_is_401(db: Database, pki: Path) -> None:
    await register(db)
    cert = der(pki, ACME)
    with pytest.raises(UnauthorizedError) as raised:
        await check_partner(db, cert=None, caller=token(cert), remote="10.1.2.3")
    assert raised.value.detail == "A client certificate from the project CA is required."
    assert raised.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


async def test_a_token_without_the_partner_role_is_403(db: Database, pki: Path) -> None:
    await register(db)
    cert = der(pki, ACME)
    with pytest.raises(ForbiddenError) as raised:
        await check_partner(
            db, cert=cert, caller=token(cert, roles=("resident",)), remote="10.1.2.3"
        )
    assert raised.value.detail == "Only partners may call the partner API."


@pytest.mark.parametrize(
    "cnf",
    [None, {}, "x5t", {"x5t#S256": 7}, {"jkt": "abc"}],
    ids=["none", "empty", "str", "int", "jkt"],
)
async def test_a_token_not_bound_to_a_certificate_is_401(db: Database, pki: Path, cnf: Any) -> None:
    await register(db)
    cert = der(pki, ACME)
    with pytest.raises(UnauthorizedError) as raised:
        await check_partner(db, cert=cert, caller=token(cert, cnf=cnf), remote="10.1.2.3")
    assert raised.value.detail == "The token must be bound to a client certificate."
    assert raised.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


async def test_a_token_bound_to_another_certificate_is_401(db: Database, pki: Path) -> None:
    await register(db)
    cert, other = der(pki, ACME), der(pki, "other")
    with pytest.raises(UnauthorizedError) as raised:
        await check_partner(db, cert=cert, caller=token(other), remote="10.1.2.3")
    assert raised.value.detail == "The token is bound to another certificate."
    assert raised.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


async def test_a_client_that_is_not_a_registered_partner_is_403(db: Database, pki: Path) -> None:
    await register(db)
    cert = der(pki, "stranger")
    with pytest.raises(ForbiddenError) as raised:
        await check_partner(
            db, cert=cert, caller=token(cert, client_id="stranger"), remote="10.1.2.3"
        )
    assert raised.value.detail == "This client is not a registered partner."


async def test_another_partners_certificate_is_403_even_with_a_token_bound_to_it(
    db: Database, pki: Path
) -> None:
    await register(db)
    await register(db, "other")
    other = der(pki, "other")
    with pytest.raises(ForbiddenError) as raised:
        await check_partner(db, cert=other, caller=token(other), remote="10.1.2.3")
    assert raised.value.detail == "The certificate does not name this partner."


@pytest.mark.parametrize("dn", ["", "not a distinguished name"], ids=["empty", "garbage"])
async def test_a_partner_registered_without_a_valid_subject_is_403(
    db: Database, pki: Path, dn: str
) -> None:
    await register(db, subject_dn=dn)
    cert = der(pki, ACME)
    with pytest.raises(ForbiddenError) as raised:
        await check_partner(db, cert=cert, caller=token(cert), remote="10.1.2.3")
    assert raised.value.detail == "The certificate does not name this partner."


@pytest.mark.parametrize(
    "remote",
    ["10.2.0.1", "192.168.1.1", None, "not-an-address"],
    ids=["only-partner-list", "neither", "none", "garbage"],
)
async def test_an_address_outside_either_allowlist_is_403(
    db: Database, pki: Path, remote: str | None
) -> None:
    await register(db)
    cert = der(pki, ACME)
    with pytest.raises(ForbiddenError) as raised:
        await check_partner(db, cert=cert, caller=token(cert), remote=remote)
    assert raised.value.detail == f"Calls from {remote} are not allowed for this partner."


async def test_one_allowlist_alone_is_enough_when_the_other_is_empty(
    db: Database, pki: Path
) -> None:
    await register(db, partner_cidrs=[], client_cidrs=["192.0.2.0/24"])
    cert = der(pki, ACME)
    assert (await check_partner(db, cert=cert, caller=token(cert), remote="192.0.2.9")).remote == (
        "192.0.2.9"
    )
    await register(db, partner_cidrs=["198.51.100.0/24"], client_cidrs=[])
    assert (
        await check_partner(db, cert=cert, caller=token(cert), remote="198.51.100.7")
    ).partner_id == ACME


async def test_a_partner_with_no_allowlist_at_all_is_refused_everywhere(
    db: Database, pki: Path
) -> None:
    await register(db, partner_cidrs=[], client_cidrs=[])
    cert = der(pki, ACME)
    with pytest.raises(ForbiddenError):
        await check_partner(db, cert=cert, caller=token(cert), remote="10.1.2.3")


def test_an_address_is_allowed_only_inside_one_of_the_networks() -> None:
    assert address_in("10.1.2.3", ["192.0.2.0/24", "10.1.0.0/16"])
    assert address_in("2001:db8::1", ["2001:db8::/32"])
    assert address_in("10.1.2.3", ["10.1.2.3/16"])  # host bits are not an error
    assert not address_in("10.2.0.1", ["10.1.0.0/16"])
    assert not address_in("10.1.2.3", [])
    assert not address_in(None, ["0.0.0.0/0"])
    assert not address_in("example.org", ["0.0.0.0/0"])


class _SslObject:
    def __init__(self, cert: bytes | None) -> None:
        self.cert = cert

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        return self.cert


class _Transport:
    def __init__(self, cert: bytes | None) -> None:
        self.ssl = _SslObject(cert)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.ssl if name == "ssl_object" else default


def request_with(cert: bytes | None, principal: Principal, remote: str) -> Any:
    request = make_mocked_request(
        "POST", "/partner/v1/events", transport=_Transport(cert), client_max_size=1024
    )
    request[PRINCIPAL] = principal
    return request.clone(remote=remote)


async def test_a_request_over_tls_is_checked_with_its_certificate_and_token(
    db: Database, pki: Path
) -> None:
    await register(db)
    cert = der(pki, ACME)
    caller = await authenticate_partner(
        request_with(cert, token(cert), "10.1.0.5"), db, pki_dir=pki
    )
    assert caller == PartnerCaller(ACME, "10.1.0.5")
    with pytest.raises(UnauthorizedError):
        await authenticate_partner(request_with(None, token(cert), "10.1.0.5"), db, pki_dir=pki)


async def test_a_revoked_certificate_is_refused_on_a_connection_opened_before_the_revocation(
    db: Database, pki: Path
) -> None:
    await register(db)
    cert = der(pki, ACME)
    request = request_with(cert, token(cert), "10.1.0.5")
    assert (await authenticate_partner(request, db, pki_dir=pki)).partner_id == ACME
    revoke_partner(pki, ACME)
    with pytest.raises(UnauthorizedError) as raised:
        await authenticate_partner(request, db, pki_dir=pki)
    assert raised.value.detail == "The client certificate is revoked."
    assert raised.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    # without a PKI dir to read the CRL from, only the four proofs count
    assert (await authenticate_partner(request, db)).partner_id == ACME


async def test_an_empty_allowlist_column_means_no_allowlist_not_an_error(
    db: Database, pki: Path
) -> None:
    await register(db, client_cidrs=["10.1.0.0/16"])
    await db.execute("UPDATE partners SET allowed_cidrs = '' WHERE id = :id", id=ACME)
    cert = der(pki, ACME)
    caller = await check_partner(db, cert=cert, caller=token(cert), remote="10.1.2.3")
    assert caller.partner_id == ACME
    await db.execute("UPDATE oauth_clients SET allowed_cidrs = '' WHERE client_id = :id", id=ACME)
    with pytest.raises(ForbiddenError):
        await check_partner(db, cert=cert, caller=token(cert), remote="10.1.2.3")
