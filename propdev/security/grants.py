"""authlib grant and endpoint classes, filled in with our store, keys and rules.

- ``CodeGrant``: authorization code for public clients (``none`` client auth), with
  ``S256Challenge`` (PKCE, S256 only, required) and ``IdToken`` (OIDC ``openid`` scope).
- ``RefreshGrant``: rotation on every use; a spent token revokes its family.
- ``PartnerGrant``: ``client_credentials`` with ``tls_client_auth`` only; tokens carry
  ``cnf.x5t#S256``.
- ``Revocation``: RFC 7009 for refresh tokens (a revoked one takes its family with it) and
  access tokens (handed back on the request, ``revoked_access``, for the server to publish).

A family revoked here (a replayed code, a reused refresh token, a revoked refresh token) is
also handed back on the request, ``revoked_grants``: the server publishes it, and every access
token issued under it (its ``sid``) is refused from then on. What the audit needs of them goes
back the same way: ``replayed_codes`` (whose), ``reused_refresh`` and ``revoked_refresh``.

Every method here runs in a worker thread. The ``server`` attribute is the ``AuthlibServer``
of ``server.py``; what the grants use of it is the ``GrantServer`` protocol below, so this
module does not import that one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from cryptography import x509

from propdev.security.clients import Client
from propdev.security.errors import InvalidTokenError
from propdev.security.store import CodeRecord, OAuthStore, RefreshRecord
from propdev.security.tokens import Claims, TokenIssuer, TokenVerifier, certificate_thumbprint
from propdev.security.users import Login, load_user, user_claims


class GrantServer(Protocol):
    """What the grants and endpoints here use of the authorization server."""

    store: OAuthStore
    issuer: TokenIssuer
    verifier: TokenVerifier  # the node's one verifier: the revocation endpoint's check


class S256Challenge(CodeChallenge):  # type: ignore[misc]  # authlib is untyped
    """PKCE with ``S256`` only: a missing challenge, a missing method or ``plain`` is refused."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": CodeChallenge.CODE_CHALLENGE_METHODS["S256"]}

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE is required")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class IdToken:
    """Adds an OIDC ID token to code-grant responses whose scope has ``openid``.

    Written here rather than authlib's ``OpenIDCode`` so that every JWT is signed by the
    one ``TokenIssuer`` (PS256, our keys, ``kid``) and nonce replay is moot (codes are single
    use, and the nonce is bound to the code).
    """

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.add_id_token)

    def add_id_token(self, grant: Any, response: tuple[int, dict[str, Any], Any]) -> None:
        _, token, _ = response
        if "openid" not in str(token.get("scope", "")).split():
            return
        request = grant.request
        code: CodeRecord = request.authorization_code
        login: Login = request.user
        server: GrantServer = grant.server
        token["id_token"] = server.issuer.issue_id_token(
            login.user.id,
            code.client_id,
            auth_time=code.auth_time,
            amr=code.amr,
            nonce=code.nonce,
            access_token=token["access_token"],
            extra=user_claims(login.user, token["scope"]),
        )


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]  # authlib is untyped
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    AUTHORIZATION_CODE_LENGTH = 48  # ~285 bits

    server: GrantServer

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        login: Login = request.user
        data = request.payload.data
        self.server.store.save_code(
            code,
            client_id=request.client.get_client_id(),
            user_id=login.user.id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            nonce=data.get("nonce"),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            amr=login.amr,
            auth_time=login.auth_time,
        )

    def query_authorization_code(self, code: str, client: Client) -> CodeRecord | None:
        # A replay revokes the family: its refresh tokens here, its access tokens (``sid``)
        # through ``revoked_grants``, which the server publishes (RFC 6749 §4.1.2).
        return self.server.store.redeem_code(
            code,
            client.client_id,
            revoked=self.request.revoked_grants,
            replayed=self.request.replayed_codes,
        )

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        pass  # kept, marked used, until purged: a replay must still be recognised

    def authenticate_user(self, authorization_code: CodeRecord) -> Login | None:
        user = load_user(self.server.store.db, authorization_code.user_id)
        if user is None:
            return None
        return Login(
            user,
            authorization_code.amr,
            authorization_code.auth_time,
            grant=authorization_code.family_id,
        )


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]  # authlib is untyped
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    server: GrantServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        return self.server.store.usable_refresh_token(
            refresh_token, revoked=self.request.revoked_grants, reused=self.request.reused_refresh
        )

    def validate_token_request(self) -> None:
        super().validate_token_request()
        record: RefreshRecord = self.request.refresh_token
        if not self.server.store.spend_refresh_token(record):
            # Spent between our read and now: a concurrent reuse.
            self.server.store.revoke_family(record.family_id, revoked=self.request.revoked_grants)
            self.request.reused_refresh.append(record)
            raise InvalidGrantError()

    def authenticate_user(self, refresh_token: RefreshRecord) -> Login | None:
        user = load_user(self.server.store.db, refresh_token.user_id)
        if user is None:
            return None
        return Login(
            user, refresh_token.amr, refresh_token.issued_at, grant=refresh_token.family_id
        )

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        pass  # already marked rotated in validate_token_request


class PartnerGrant(ClientCredentialsGrant):  # type: ignore[misc]  # authlib is untyped
    TOKEN_ENDPOINT_AUTH_METHODS = ["tls_client_auth"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        if self.request.client.get_allowed_scope(self.request.payload.scope) is None:
            raise InvalidScopeError()


class Revocation(RevocationEndpoint):  # type: ignore[misc]  # authlib is untyped
    CLIENT_AUTH_METHODS = ["none", "tls_client_auth"]
    SUPPORTED_TOKEN_TYPES = ("refresh_token", "access_token")

    server: GrantServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        # An access token is a self-contained JWT: one of ours that is still valid is revoked
        # by its jti (see ``OAuthServer.revoke``); anything else unknown is answered 200 all
        # the same (RFC 7009 §2.2).
        if token_type_hint != "refresh_token" and token_string.count(".") == 2:
            try:
                return AccessTokenRecord(self.server.verifier.verify(token_string))
            except InvalidTokenError:
                return None
        return self.server.store.find_refresh_token(token_string)

    def revoke_token(self, token: RefreshRecord | AccessTokenRecord, request: Any) -> None:
        if isinstance(token, AccessTokenRecord):
            request.revoked_access.append(token.claims)
        else:
            self.server.store.revoke_family(token.family_id, revoked=request.revoked_grants)
            request.revoked_refresh.append(token)


@dataclass(frozen=True, slots=True)
class AccessTokenRecord:
    """A valid access token of ours presented for revocation, by the client it was issued to."""

    claims: Claims

    def check_client(self, client: Client) -> bool:
        return bool(client.get_client_id() == self.claims.client_id)


def authenticate_tls_client(query_client: Any, request: Any) -> Client | None:
    """``tls_client_auth`` (RFC 8705 §2.1): the certificate the TLS layer verified against the
    project CA must carry the subject DN registered for ``client_id``, and the request must
    come from one of the client's networks."""
    cert_der: bytes | None = getattr(request, "client_cert_der", None)
    client_id = request.payload.client_id
    if not cert_der or not client_id:
        return None
    client: Client | None = query_client(client_id)
    if client is None or client.token_endpoint_auth_method != "tls_client_auth":
        return None
    if not client.tls_client_auth_subject_dn:
        return None
    try:
        subject = x509.load_der_x509_certificate(cert_der).subject
        registered = x509.Name.from_rfc4514_string(client.tls_client_auth_subject_dn)
    except ValueError:
        return None
    if subject != registered:
        return None
    if not client.address_allowed(getattr(request, "remote", None)):
        return None
    client.cert_thumbprint = certificate_thumbprint(cert_der)
    return client
