"""The authorization server: authlib's framework-agnostic core, driven from worker threads.

``OAuthServer`` is the async facade the HTTP adapter (``propdev.http.routes.oauth``) calls.
Each call hops to a worker thread once (``asyncio.to_thread``), where authlib, Argon2 and the
sync database helpers run; the event loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload

import propdev.security.auth_audit as auth_audit
from propdev.config.settings import Settings
from propdev.security.auth_audit import AuthAudit, Origin
from propdev.security.clients import Client, load_client
from propdev.security.errors import (
    AuthorizationRequestError,
    InvalidTokenError,
    LoginFailedError,
    LoginThrottledError,
)
from propdev.security.grants import (
    CodeGrant,
    IdToken,
    PartnerGrant,
    RefreshGrant,
    Revocation,
    S256Challenge,
    authenticate_tls_client,
)
from propdev.security.keys import ALGORITHM
from propdev.security.signin import SignInThrottle
from propdev.security.store import OAuthStore, RefreshRecord
from propdev.security.tickets import FormTickets, load_or_create_secret
from propdev.security.tokens import Claims, TokenIssuer, TokenVerifier, check_certificate_binding
from propdev.security.users import (
    Login,
    authenticate,
    load_user,
    normalize_username,
    user_claims,
)
from propdev.storage import Database

log = structlog.get_logger()

Params = Mapping[str, Sequence[str]]

SCOPES_SUPPORTED = ("openid", "profile", "phone", "api", "partner")
# The claims of ID tokens and userinfo (``users.user_claims`` and ``TokenIssuer``).
CLAIMS_SUPPORTED = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "at_hash",
    "preferred_username",
    "roles",
    "name",
    "phone_number",
)
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("none", "tls_client_auth")
# The parameters an authorization request may carry through the login form.
AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)


def _first(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _request_object_refusal(params: Params) -> tuple[str, str] | None:
    """Request objects are not supported (discovery says so): OIDC Core §6 errors."""
    if _first(params, "request") is not None:
        return "request_not_supported", "Request objects are not supported"
    if _first(params, "request_uri") is not None:
        return "request_uri_not_supported", "Request objects by reference are not supported"
    return None


def _prompt_refusal(params: Params) -> tuple[str, str] | None:
    """``prompt`` (OIDC Core §3.1.2.1): there is no sign-in session to reuse, so ``none`` cannot
    be honoured (``login_required``); ``login`` is what every request gets anyway."""
    values = set((_first(params, "prompt") or "").split())
    if "none" not in values:
        return None
    if len(values) > 1:
        return "invalid_request", "prompt=none cannot be combined with other values"
    return "login_required", "The user must sign in"


def _unreadable() -> AuthorizationRequestError:
    # authlib raises ValueError building an error description from a value with a quote, a
    # backslash, a control or a non-ASCII character (RFC 6749 allows none of them there); the
    # redirect_uri may be the culprit, so there is nowhere safe to redirect to.
    return AuthorizationRequestError(
        "invalid_request", "The request has characters that are not allowed in it."
    )


@dataclasses.dataclass(frozen=True, slots=True)
class OAuthResponse:
    """What an endpoint answers: the adapter turns it into an HTTP response."""

    status: int
    body: dict[str, Any] | str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def location(self) -> str | None:
        return dict(self.headers).get("Location")


@dataclasses.dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request, ready for the login form."""

    client_id: str
    client_name: str
    redirect_uri: str
    scope: str
    params: Mapping[str, str]  # the AUTHORIZE_PARAMS present, single-valued


class _Payload(OAuth2Payload):  # type: ignore[misc]  # authlib is untyped
    def __init__(self, params: Params) -> None:
        self._datalist = {k: list(v) for k, v in params.items()}
        self._data = {k: v[0] for k, v in self._datalist.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]  # authlib is untyped
    """An OAuth2Request built from plain values, so it can cross into a worker thread."""

    def __init__(
        self,
        method: str,
        uri: str,
        params: Params,
        headers: Mapping[str, str] | None = None,
        *,
        client_cert_der: bytes | None = None,
        remote: str | None = None,
    ) -> None:
        super().__init__(method, uri, headers=headers if headers is not None else {})
        self.payload = _Payload(params)
        self.client_cert_der = client_cert_der
        self.remote = remote
        self.revoked_access: list[Claims] = []  # access tokens the revocation endpoint took
        self.revoked_grants: list[str] = []  # refresh families revoked: their ``sid``
        # For the audit (auth_audit): whose replayed codes, reused and revoked refresh tokens.
        self.replayed_codes: list[str] = []
        self.reused_refresh: list[RefreshRecord] = []
        self.revoked_refresh: list[RefreshRecord] = []

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


class AuthlibServer(AuthorizationServer):  # type: ignore[misc]  # authlib is untyped
    """authlib's ``AuthorizationServer`` with our clients, token generator and responses."""

    def __init__(
        self,
        settings: Settings,
        store: OAuthStore,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
    ) -> None:
        super().__init__(scopes_supported=list(SCOPES_SUPPORTED))
        self.settings = settings
        self.store = store
        self.issuer = issuer
        self.verifier = verifier  # the revocation endpoint's check of a presented access token
        self.register_token_generator("default", self._generate_token)
        self.register_client_auth_method("tls_client_auth", authenticate_tls_client)
        self.register_grant(CodeGrant, [S256Challenge(required=True), IdToken()])
        self.register_grant(RefreshGrant)
        self.register_grant(PartnerGrant)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> Client | None:
        return load_client(self.store.db, client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        refresh_token = token.get("refresh_token")
        if not refresh_token:
            return
        login: Login = request.user
        if request.refresh_token is not None:  # rotation: same family, same absolute expiry
            family_id = request.refresh_token.family_id
            expires_at = request.refresh_token.expires_at
        else:
            family_id = request.authorization_code.family_id
            expires_at = self.store.clock() + self.settings.refresh_token_ttl
        self.store.save_refresh_token(
            refresh_token,
            family_id=family_id,
            client_id=request.client.get_client_id(),
            user_id=login.user.id,
            scope=token["scope"],
            amr=login.amr,
            expires_at=expires_at,
        )

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        assert isinstance(request, _Request)
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def handle_response(
        self, status: int, body: Any, headers: Sequence[tuple[str, str]]
    ) -> OAuthResponse:
        """Redirects become 303 with ``iss`` (RFC 9207); everything else passes through."""
        hdrs = [(k, v) for k, v in headers]
        if status == 302:
            status = 303
            hdrs = [
                (k, add_params_to_uri(v, [("iss", self.issuer.issuer)]) if k == "Location" else v)
                for k, v in hdrs
            ]
            hdrs.append(("Cache-Control", "no-store"))
        return OAuthResponse(status, body if isinstance(body, dict) else str(body), tuple(hdrs))

    def _generate_token(
        self,
        grant_type: str,
        client: Client,
        user: Login | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        if user is not None:
            granted = scope or ""
            sub, roles, amr = user.user.id, user.user.roles, user.amr
        else:  # client_credentials: the partner is the subject
            granted = client.get_allowed_scope(scope) or ""
            sub, roles, amr = client.client_id, ("partner",), ("mtls",)
        cnf = {"x5t#S256": client.cert_thumbprint} if client.cert_thumbprint else None
        sid = user.grant if user is not None else None
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.issuer.issue_access_token(
                sub, client.client_id, granted, roles, amr, cnf, sid=sid
            ),
            "expires_in": self.issuer.access_token_ttl,
            "scope": granted,
        }
        if include_refresh_token and user is not None:
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token


class OAuthServer:
    """The node's authorization server. Construct once per node::

    keys = SigningKeys.load_or_create(settings.pki_dir / "jwt")
    issuer = TokenIssuer(settings, keys)
    verifier = TokenVerifier(settings, keys)    # the node's one verifier, revocations hooked in
    server = OAuthServer(settings, db, issuer, verifier)
    app.add_routes(oauth_routes(server))          # propdev.http.routes.oauth

    Every access token it checks (userinfo, revocation) goes through ``verifier``: the same
    object the API's auth middleware uses, so a token, subject or grant revoked there (RFC 7009,
    a move-out, a replayed code) is refused here too.

    Brute force: ``throttle`` counts failed logins per (account, address), per account and
    per address, and failed token requests per address in a bucket of their own
    (``propdev.security.signin``). This process's by default; a cluster node passes one
    shared through Redis (``SignInThrottle.shared``).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        *,
        clock: Callable[[], float] = time.time,
        throttle: SignInThrottle | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.issuer = issuer
        self.clock = clock
        self.store = OAuthStore(db, clock)
        self.verifier = verifier
        self.audit = AuthAudit(db, clock=clock)  # auth.* entries (docs/audit.md)
        self.authlib = AuthlibServer(settings, self.store, issuer, verifier)
        # Where a revoked access token is published: the node's (cluster's) ``Revocations``.
        self.on_access_revoked: Callable[[Claims], Awaitable[None]] | None = None
        # Where a revoked grant is published, with the latest expiry of its access tokens.
        self.on_grant_revoked: Callable[[str, float], Awaitable[None]] | None = None
        # Failed logins per account, (account, address) and address; failed token requests.
        self.throttle: SignInThrottle = (
            throttle
            if throttle is not None
            else SignInThrottle.local(settings.auth_failures_per_ip, clock=clock)
        )
        secret = load_or_create_secret(settings.pki_dir / "jwt" / "form-secret")
        self.tickets = FormTickets(secret, clock=clock)
        self._base = settings.public_url

    # -- metadata -------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """OpenID Provider / RFC 8414 metadata."""
        base = self._base
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/oauth/jwks",
            "userinfo_endpoint": f"{base}/oauth/userinfo",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "grant_types_supported": list(GRANT_TYPES),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "tls_client_certificate_bound_access_tokens": True,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "scopes_supported": list(SCOPES_SUPPORTED),
            "authorization_response_iss_parameter_supported": True,
            "claims_supported": list(CLAIMS_SUPPORTED),
            "prompt_values_supported": ["none", "login"],
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "claims_parameter_supported": False,
        }

    def jwks(self) -> dict[str, Any]:
        return self.issuer.jwks()

    # -- authorization endpoint -----------------------------------------------------------

    async def check_authorization(self, params: Params) -> AuthorizationRequest | OAuthResponse:
        """Validate an authorization request.

        Returns the request for the login form, or a redirect carrying an error to a client
        whose ``redirect_uri`` checked out; raises ``AuthorizationRequestError`` when there is
        no safe place to redirect to (unknown client, unregistered ``redirect_uri``).
        """
        return await asyncio.to_thread(self._check_authorization, params)

    async def login(
        self,
        username: str,
        password: str,
        otp: str,
        *,
        remote: str | None = None,
        client_id: str | None = None,
    ) -> Login:
        """Check the credentials; raises ``LoginFailedError`` (the same whatever was wrong),
        or ``LoginThrottledError`` without checking them while the account is in back-off
        (from ``remote``, the client's address, or from everywhere) or ``remote`` has reached
        its ceiling of failures (``propdev.security.signin``). Every outcome is an
        ``auth.login`` audit entry (``auth_audit``), appended before this returns."""
        name = normalize_username(username)
        address = remote or ""
        origin = Origin(client_id, remote)
        wait = await self.throttle.login_wait(name, address)
        if wait:
            throttled = LoginThrottledError(wait.seconds, wait.scope)
            await self._login_denied(throttled, origin, username)
            raise throttled
        try:
            login = await asyncio.to_thread(
                authenticate, self.db, username, password, otp, now=self.clock()
            )
        except LoginFailedError as exc:
            await self.throttle.login_failed(name, address)
            await self._login_denied(exc, origin, username)
            raise
        await self.throttle.login_succeeded(name, address)
        user = login.user
        await self.audit.append(
            auth_audit.LOGIN,
            decision="granted",
            reason=auth_audit.sign_in_method(login.amr),
            origin=origin,
            actor=auth_audit.person(user.id, user.roles),
            subject=user.id,
            username=username,
        )
        return login

    async def _login_denied(self, exc: LoginFailedError, origin: Origin, username: str) -> None:
        user_id = exc.user_id
        if user_id is None and isinstance(exc, LoginThrottledError):  # credentials unchecked
            user_id = await self._account_id(username)
        await self.audit.append(
            auth_audit.LOGIN,
            decision="denied",
            reason=exc.reason,
            origin=origin,
            actor=auth_audit.ANONYMOUS if user_id is None else await self.audit.actor_of(user_id),
            subject=user_id,
            username=username,
        )

    async def _account_id(self, username: str) -> str | None:
        name = normalize_username(username)
        if not name:
            return None
        row = await self.db.fetch_one("SELECT id FROM users WHERE username = :u", u=name)
        return None if row is None else str(row["id"])

    async def authorize(self, params: Params, login: Login) -> OAuthResponse:
        """Issue a code to the client: a 303 to ``redirect_uri?code&state&iss``."""
        return await asyncio.to_thread(self._authorize, params, login)

    def _authorize_request(self, params: Params) -> _Request:
        only = {k: list(v) for k, v in params.items() if k in AUTHORIZE_PARAMS}
        return _Request("GET", f"{self._base}/oauth/authorize", only)

    def _check_authorization(self, params: Params) -> AuthorizationRequest | OAuthResponse:
        request = self._authorize_request(params)
        # A request object may carry the parameters the outer request lacks, so refusing it
        # comes before authlib's other errors, once the redirect_uri checked out (Core §6).
        refusal = _request_object_refusal(params)
        try:
            grant = self.authlib.get_consent_grant(request)
        except OAuth2Error as error:
            if refusal is not None and error.redirect_uri:
                return self._refuse(request, refusal, error.redirect_uri)
            return self._error(request, error)
        except ValueError:
            raise _unreadable() from None
        refusal = refusal or _prompt_refusal(params)
        if refusal is not None:
            return self._refuse(request, refusal, grant.redirect_uri)
        client: Client = request.client
        return AuthorizationRequest(
            client_id=client.client_id,
            client_name=client.client_name,
            redirect_uri=grant.redirect_uri,
            scope=request.scope or "",
            params=dict(request.payload.data),
        )

    def _refuse(
        self, request: _Request, refusal: tuple[str, str], redirect_uri: str
    ) -> OAuthResponse:
        """An error redirect (with ``state``) to ``redirect_uri``, which authlib verified."""
        error, description = refusal
        return self._error(
            request,
            OAuth2Error(
                description,
                error=error,
                state=request.payload.state,
                redirect_uri=redirect_uri,
            ),
        )

    def _error(self, request: _Request, error: OAuth2Error) -> OAuthResponse:
        """A redirect with the error to a verified ``redirect_uri``; otherwise raise."""
        if not error.redirect_uri:
            raise AuthorizationRequestError(
                error.error or "invalid_request", error.get_error_description() or ""
            )
        response = self.authlib.handle_error_response(request, error)
        assert isinstance(response, OAuthResponse)
        return response

    def _authorize(self, params: Params, login: Login) -> OAuthResponse:
        request = self._authorize_request(params)
        try:
            grant = self.authlib.get_consent_grant(request, end_user=login)
        except OAuth2Error as error:
            return self._error(request, error)
        except ValueError:
            raise _unreadable() from None
        response = self.authlib.create_authorization_response(
            request=request, grant_user=login, grant=grant
        )
        assert isinstance(response, OAuthResponse)
        return response

    # -- token, revocation, userinfo ------------------------------------------------------

    async def token(
        self,
        form: Params,
        headers: Mapping[str, str],
        *,
        client_cert_der: bytes | None = None,
        remote: str | None = None,
    ) -> OAuthResponse:
        """The token endpoint: ``authorization_code``, ``refresh_token``, ``client_credentials``."""
        request = _Request(
            "POST",
            f"{self._base}/oauth/token",
            form,
            headers,
            client_cert_der=client_cert_der,
            remote=remote,
        )
        response = await asyncio.to_thread(self.authlib.create_token_response, request)
        assert isinstance(response, OAuthResponse)
        await self._grants_revoked(request)
        await self._audit_token(request, response, _first(form, "grant_type"))
        return response

    async def _audit_token(
        self, request: _Request, response: OAuthResponse, grant_type: str | None
    ) -> None:
        """The token endpoint's entries: a replayed code or reused refresh token, and a
        ``refresh_token`` grant as an ``auth.login`` (a code's exchange is not one: its
        sign-in was; ``client_credentials`` is a partner's, not a person's)."""
        origin = Origin(_first(request.payload.datalist, "client_id"), request.remote)
        for user_id in request.replayed_codes:
            await self._family_revoked(auth_audit.CODE_REPLAY, user_id, origin)
        for record in request.reused_refresh:
            await self._family_revoked(auth_audit.REFRESH_REUSE, record.user_id, origin)
        if grant_type != "refresh_token" or request.reused_refresh:
            return  # a reuse is its entry above
        if response.status == 200:
            login: Login = request.user
            await self.audit.append(
                auth_audit.LOGIN,
                decision="granted",
                reason="refresh_token",
                origin=origin,
                actor=auth_audit.person(login.user.id, login.user.roles),
                subject=login.user.id,
            )
            return
        error = response.body.get("error") if isinstance(response.body, dict) else None
        reason = {"invalid_grant": "refresh_invalid", "invalid_client": "refresh_bad_client"}
        presented = request.refresh_token  # a token found but refused later (scope, client)
        owner = presented.user_id if isinstance(presented, RefreshRecord) else None
        await self.audit.append(
            auth_audit.LOGIN,
            decision="denied",
            reason=reason.get(str(error), f"refresh_{error or 'error'}"),
            origin=origin,
            actor=auth_audit.ANONYMOUS if owner is None else await self.audit.actor_of(owner),
            subject=owner,
        )

    async def _family_revoked(self, action: str, user_id: str, origin: Origin) -> None:
        await self.audit.append(
            action,
            decision="denied",
            reason="family_revoked",
            origin=origin,
            actor=await self.audit.actor_of(user_id),
            subject=user_id,
        )

    async def revoke(
        self,
        form: Params,
        headers: Mapping[str, str],
        *,
        client_cert_der: bytes | None = None,
        remote: str | None = None,
    ) -> OAuthResponse:
        """RFC 7009 revocation: refresh tokens (and their family) in the store, and the family's
        access tokens through ``on_grant_revoked`` (§2.1); a valid access token by its jti,
        through ``on_access_revoked``. Every node of a cluster refuses them."""
        request = _Request(
            "POST",
            f"{self._base}/oauth/revoke",
            form,
            headers,
            client_cert_der=client_cert_der,
            remote=remote,
        )
        response = await asyncio.to_thread(
            self.authlib.create_endpoint_response, Revocation.ENDPOINT_NAME, request
        )
        assert isinstance(response, OAuthResponse)
        for claims in request.revoked_access:
            if self.on_access_revoked is not None:
                await self.on_access_revoked(claims)
            log.info("access_token_revoked", sub=claims.sub, client_id=claims.client_id)
        await self._grants_revoked(request)
        revoked = [
            (c.sub, auth_audit.person(c.sub, c.roles), "access_token", c.client_id)
            for c in request.revoked_access
        ]
        for record in request.revoked_refresh:
            actor = await self.audit.actor_of(record.user_id)
            revoked.append((record.user_id, actor, "refresh_token", record.client_id))
        for user_id, actor, kind, client_id in revoked:
            await self.audit.append(
                auth_audit.REVOKE,
                decision="granted",
                reason=kind,
                origin=Origin(client_id, remote),
                actor=actor,
                subject=user_id,
            )
        return response

    async def _grants_revoked(self, request: _Request) -> None:
        """Publish the grants revoked while handling ``request``: a replayed code, a reused or
        revoked refresh token. Their access tokens (``sid``) are refused until the last of
        them would have expired."""
        until = self.clock() + self.issuer.access_token_ttl
        for sid in request.revoked_grants:
            if self.on_grant_revoked is not None:
                await self.on_grant_revoked(sid, until)
            log.info("oauth_grant_revoked", sid=sid)

    async def userinfo(
        self, access_token: str, *, client_cert_der: bytes | None = None
    ) -> dict[str, Any]:
        """OIDC userinfo for a valid access token; raises ``InvalidTokenError``."""
        claims = self.verifier.verify(access_token)
        check_certificate_binding(claims, client_cert_der)
        user = await asyncio.to_thread(load_user, self.db, claims.sub)
        if user is None:
            raise InvalidTokenError("unknown subject")
        scope = " ".join(sorted(claims.scope))
        return {"sub": user.id, **user_claims(user, scope)}
