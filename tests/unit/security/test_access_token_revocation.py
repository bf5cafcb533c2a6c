"""RFC 7009 for access tokens: the revocation endpoint hands a valid access token of ours,
presented by the client it was issued to, to ``on_access_revoked`` (the node publishes it to
every node); a token verifier protected by ``Revocations`` then refuses it."""

from __future__ import annotations

from typing import Any

import pytest

from propdev.registry import CERTIFICATE, InProcessBus, Revocations, honour_revocations
from propdev.security import (
    Claims,
    InvalidTokenError,
    OAuthServer,
    TokenVerifier,
    register_public_client,
)
from propdev.storage import Database
from tests.unit.security.conftest import CLIENT_ID, REDIRECT_URI
from tests.unit.security.helpers import code_for, exchange

# Sign-ins here are about revocation, not hashing.
pytestmark = pytest.mark.usefixtures("cheap_passwords")


async def _tokens(client: Any) -> dict[str, Any]:
    code, code_verifier = await code_for(client)
    return dict(await (await exchange(client, code, code_verifier)).json())


async def test_a_revoked_access_token_is_handed_on_and_then_refused(
    client: Any, oauth: OAuthServer, verifier: TokenVerifier
) -> None:
    published: list[Claims] = []

    async def publish(claims: Claims) -> None:
        published.append(claims)

    oauth.on_access_revoked = publish
    bus = InProcessBus()
    revocations = Revocations(bus)
    honour_revocations(verifier, revocations)
    tokens = await _tokens(client)
    access = tokens["access_token"]
    assert verifier.verify(access).sub  # valid, and now cached

    revoked = await client.post(
        "/oauth/revoke",
        data={"token": access, "token_type_hint": "access_token", "client_id": CLIENT_ID},
    )
    assert revoked.status == 200
    assert [c.jti for c in published] == [verifier.verify(access).jti]
    await revocations.revoke_access_token(published[0])  # what the node does with it
    with pytest.raises(InvalidTokenError, match="revoked"):
        verifier.verify(access)
    await bus.close()


async def test_only_the_client_a_token_was_issued_to_may_revoke_it(
    client: Any, oauth: OAuthServer, db: Database
) -> None:
    published: list[Claims] = []

    async def publish(claims: Claims) -> None:
        published.append(claims)

    oauth.on_access_revoked = publish
    await register_public_client(
        db, "other-app", client_name="Other", redirect_uris=[REDIRECT_URI], scope="openid"
    )
    tokens = await _tokens(client)
    refused = await client.post(
        "/oauth/revoke", data={"token": tokens["access_token"], "client_id": "other-app"}
    )
    assert refused.status == 400
    unknown = await client.post(
        "/oauth/revoke", data={"token": "not.a.token", "client_id": CLIENT_ID}
    )
    assert unknown.status == 200  # RFC 7009 §2.2: an invalid token is answered 200
    assert published == []


async def test_a_token_bound_to_a_revoked_certificate_is_refused(verifier: TokenVerifier) -> None:
    bus = InProcessBus()
    revocations = Revocations(bus)
    honour_revocations(verifier, revocations)
    assert verifier.revoked is not None

    def claims(thumbprint: str) -> Claims:
        return Claims(
            sub="simulator", client_id="simulator", scope=frozenset({"partner"}),
            roles=frozenset({"partner"}), amr=(), exp=2e9, iat=1e9, jti="j1",
            cnf={"x5t#S256": thumbprint}, raw={},
        )  # fmt: skip

    assert not verifier.revoked(claims("thumb-1"))
    await revocations.revoke(CERTIFICATE, "thumb-1", 2e9)
    assert verifier.revoked(claims("thumb-1"))
    assert not verifier.revoked(claims("thumb-2"))
    await bus.close()
