"""TLS from outside: versions, plain HTTP, HSTS, partner certificates, revocation, rotation."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl

import aiohttp
import pytest
from cryptography import x509

from propdev.devkit import register_partner
from propdev.pki import ensure_server_cert, issue_partner_cert
from propdev.pki.crl import revoke_partner, revoked_serials
from propdev.storage import Database
from tests.e2e.conftest import RunningNode
from tests.security.conftest import tls_client
from tests.security.helpers import raw_tls, read_all
from tests.support.eventually import eventually

# The reload on SIGHUP is at once (the file watch, every 2 s, is the fallback): a bound for a
# reload that never comes, not a measurement.
RELOAD_BOUND = 10.0


async def _handshake(node: RunningNode, ctx: ssl.SSLContext) -> ssl.SSLObject:
    _, writer = await raw_tls(node, ctx)
    ssl_object = writer.get_extra_info("ssl_object")
    writer.close()
    return ssl_object


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # we mean to use the old versions
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
async def test_tls_1_0_and_1_1_are_refused(node: RunningNode, version: ssl.TLSVersion) -> None:
    ctx = tls_client(node)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = version
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _handshake(node, ctx)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_tls_1_2_and_1_3_are_served(node: RunningNode, version: ssl.TLSVersion) -> None:
    ctx = tls_client(node)
    ctx.minimum_version = ctx.maximum_version = version
    ssl_object = await _handshake(node, ctx)
    assert ssl_object.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
    if version is ssl.TLSVersion.TLSv1_2:
        cipher = ssl_object.cipher()
        assert (
            cipher is not None
            and "ECDHE" in cipher[0]
            and ("GCM" in cipher[0] or "CHACHA" in cipher[0])
        )


async def test_plain_http_on_the_api_port_gets_no_http_answer(node: RunningNode) -> None:
    reader, writer = await asyncio.open_connection(node.settings.host, node.settings.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    answer = await read_all(reader, limit=5)
    writer.close()
    assert not answer.startswith(b"HTTP/")
    assert b"ok" not in answer.lower() or answer[:1] == b"\x15"  # at most a TLS alert


async def test_responses_carry_hsts(node: RunningNode) -> None:
    async with node.http.get(f"{node.url}/healthz") as resp:
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
        assert (
            int(resp.headers["Strict-Transport-Security"].split("=")[1].split(";")[0]) >= 15552000
        )


async def _partner(node: RunningNode, name: str, cidrs: list[str]) -> tuple[str, str]:
    db = Database(node.settings.database_url)
    try:
        cert = await register_partner(node.settings, db, name, cidrs)
    finally:
        await db.close()
    return str(cert), str(cert.with_name("key.pem"))


async def _client_credentials(
    node: RunningNode, name: str, ctx: ssl.SSLContext
) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
        async with http.post(
            f"{node.url}/oauth/token", data={"grant_type": "client_credentials", "client_id": name}
        ) as resp:
            return resp.status, await resp.json()


async def test_a_partner_outside_its_allowlist_gets_no_token(node: RunningNode) -> None:
    cert, key = await _partner(node, "faraway", ["10.0.0.0/8"])
    status, body = await _client_credentials(node, "faraway", tls_client(node, cert=cert, key=key))
    assert status in (400, 401) and body["error"] == "invalid_client"


async def test_a_partner_without_certificate_gets_no_token(node: RunningNode) -> None:
    await _partner(node, "acme", ["127.0.0.0/8"])
    status, body = await _client_credentials(node, "acme", tls_client(node))
    assert status in (400, 401) and body["error"] == "invalid_client"


async def test_a_stolen_token_with_another_certificate_is_refused(node: RunningNode) -> None:
    a_cert, a_key = await _partner(node, "acme", ["127.0.0.0/8"])
    b_cert, b_key = await _partner(node, "globex", ["127.0.0.0/8"])
    status, body = await _client_credentials(node, "acme", tls_client(node, cert=a_cert, key=a_key))
    assert status == 200, body
    token = body["access_token"]
    for ctx, expected in (
        (tls_client(node, cert=b_cert, key=b_key), 401),  # thief's own certificate
        (tls_client(node), 401),  # no certificate
        (tls_client(node, cert=a_cert, key=a_key), 404),  # the holder: past auth, no account
    ):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
            async with http.get(
                f"{node.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == expected


async def test_a_revoked_partner_certificate_fails_the_handshake_after_reload(
    node: RunningNode,
) -> None:
    cert, key = await _partner(node, "acme", ["127.0.0.0/8"])
    ctx = tls_client(node, cert=cert, key=key)
    status, _ = await _client_credentials(node, "acme", ctx)
    assert status == 200
    serial = revoke_partner(node.settings.pki_dir, "acme")
    assert serial in revoked_serials(node.settings.pki_dir)
    os.kill(os.getpid(), signal.SIGHUP)  # what an operator does after `pki revoke-partner`

    async def refused() -> bool:
        try:
            await _client_credentials(node, "acme", tls_client(node, cert=cert, key=key))
        except (ssl.SSLError, ConnectionError, aiohttp.ClientError):
            return True
        return False

    await eventually(refused, within=RELOAD_BOUND, what="the revoked certificate refused")
    # Residents (no client certificate) are not affected; a re-issued certificate works.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_client(node))) as s:
        async with s.get(f"{node.url}/healthz") as resp:
            assert resp.status == 200
    issue_partner_cert(node.settings.pki_dir, "acme", force=True)
    status, _ = await _client_credentials(node, "acme", tls_client(node, cert=cert, key=key))
    assert status == 200


async def test_a_client_certificate_from_another_ca_fails_the_handshake(
    node: RunningNode, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other-ca")
    paths = issue_partner_cert(other, "acme")
    await _partner(node, "acme", ["127.0.0.0/8"])
    with pytest.raises((ssl.SSLError, ConnectionError, aiohttp.ClientError)):
        await _client_credentials(node, "acme", tls_client(node, cert=paths.cert, key=paths.key))


async def test_a_server_only_certificate_cannot_act_as_a_client(node: RunningNode) -> None:
    paths = ensure_server_cert(node.settings.pki_dir, ("127.0.0.1",), name="not-a-client")
    with pytest.raises((ssl.SSLError, ConnectionError, aiohttp.ClientError)):
        await _client_credentials(
            node, "simulator", tls_client(node, cert=paths.cert, key=paths.key)
        )


async def test_the_server_certificate_rotates_without_downtime(node: RunningNode) -> None:
    ctx = tls_client(node)
    before = x509.load_der_x509_certificate(
        (await _handshake(node, ctx)).getpeercert(binary_form=True)
    )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as kept:
        async with kept.get(f"{node.url}/healthz") as resp:
            assert resp.status == 200
        server = node.settings.pki_dir / "server"
        (server / "cert.pem").unlink()
        ensure_server_cert(node.settings.pki_dir, ("127.0.0.1", "localhost"))
        os.kill(os.getpid(), signal.SIGHUP)

        async def served_anew() -> x509.Certificate | None:
            served = await _handshake(node, tls_client(node))
            cert = x509.load_der_x509_certificate(served.getpeercert(binary_form=True))
            return cert if cert.serial_number != before.serial_number else None

        after = await eventually(served_anew, within=RELOAD_BOUND, what="the new certificate")
        assert after.subject == before.subject
        async with kept.get(f"{node.url}/healthz") as resp:  # the open connection goes on
            assert resp.status == 200


async def _post_events(node: RunningNode, token: str, ctx: ssl.SSLContext) -> tuple[int, str]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
        async with http.post(
            f"{node.url}/partner/v1/events",
            json={"events": []},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            return resp.status, str((await resp.json()).get("detail", ""))


async def test_partner_route_refuses_missing_foreign_and_out_of_allowlist_callers(
    node: RunningNode,
) -> None:
    a_cert, a_key = await _partner(node, "acme", ["127.0.0.0/8"])
    b_cert, b_key = await _partner(node, "globex", ["127.0.0.0/8"])
    status, body = await _client_credentials(node, "acme", tls_client(node, cert=a_cert, key=a_key))
    assert status == 200, body
    token = body["access_token"]
    status, detail = await _post_events(node, token, tls_client(node))  # no certificate
    assert status == 401 and "signature" not in detail
    status, detail = await _post_events(node, token, tls_client(node, cert=b_cert, key=b_key))
    assert status == 401 and "signature" not in detail  # a stolen token, another certificate
    # The holder gets past mTLS and the binding; the unsigned body is what is refused now.
    status, detail = await _post_events(node, token, tls_client(node, cert=a_cert, key=a_key))
    assert status == 401 and "signature" in detail
    await _partner(node, "acme", ["10.0.0.0/8"])  # the allowlist shrinks after the token
    status, _ = await _post_events(node, token, tls_client(node, cert=a_cert, key=a_key))
    assert status == 403
