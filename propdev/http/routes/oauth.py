"""The OAuth 2.0 / OIDC server's routes: HTTP in, ``OAuthServer`` calls, HTTP out.

The server itself (authlib, grants, stores) is ``propdev.security``, free of aiohttp.web.

``oauth_routes(server)`` returns the route table for the app builder::

    GET  /.well-known/openid-configuration   OIDC discovery
    GET  /.well-known/oauth-authorization-server   the same, RFC 8414
    GET  /oauth/jwks                         public signing keys
    GET  /oauth/authorize                    validates the request, shows the login form
    POST /oauth/authorize                    checks the credentials, 303 to the client with a code
    POST /oauth/token                        code, refresh_token, client_credentials
    POST /oauth/revoke                       RFC 7009
    GET  /oauth/userinfo                     OIDC userinfo (Bearer)
    POST /oauth/userinfo                     the same (OIDC Core 5.3.1)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from propdev.http.errors import BadRequestError
from propdev.http.tls import client_certificate_der
from propdev.security import (
    AUTHORIZE_PARAMS,
    LOGIN_PAGE_HEADERS,
    AuthorizationRequest,
    AuthorizationRequestError,
    InvalidTokenError,
    LoginFailedError,
    LoginThrottledError,
    OAuthResponse,
    OAuthServer,
    render_login_error,
    render_login_page,
)

log = structlog.get_logger()

TICKET_FIELD = "form_ticket"
_FORM_TYPE = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

CertificateGetter = Callable[[web.Request], bytes | None]


def _lists(values: MultiMapping[Any], names: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    keys = dict.fromkeys(values.keys())
    return {k: [str(v) for v in values.getall(k)] for k in keys if names is None or k in names}


async def _read_form(request: web.Request) -> MultiMapping[Any] | None:
    """The parsed body, or None when it cannot be parsed: a multipart body without its boundary
    or with a wrong one, an unknown charset, bytes that are not in it."""
    try:
        return await request.post()
    except (ValueError, LookupError) as exc:  # aiohttp's parsers raise these on bad input
        log.info("oauth_form_unreadable", path=request.path, reason=str(exc)[:200])
        return None


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body.encode("utf-8"), headers=LOGIN_PAGE_HEADERS)


def _oauth_response(response: OAuthResponse) -> web.Response:
    headers = CIMultiDict(response.headers)
    headers.update(_NO_STORE)
    if isinstance(response.body, dict):
        headers["Content-Type"] = "application/json"
        body = json.dumps(response.body).encode("utf-8")
        return web.Response(status=response.status, body=body, headers=headers)
    return web.Response(status=response.status, text=response.body or None, headers=headers)


def _throttled_message(scope: str, seconds: int) -> str:
    """The login page's sentence for a throttled sign-in."""
    wait = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
    if scope == "address":
        return f"Too many failed sign-ins from your network. Wait {wait} and try again."
    return f"Too many failed attempts for this account. Wait {wait} and try again."


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class _Handlers:
    def __init__(self, server: OAuthServer, certificate: CertificateGetter) -> None:
        self.server = server
        self.certificate = certificate
        self._metadata = server.metadata()

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(self._metadata, headers={"Cache-Control": "max-age=300"})

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.server.jwks(), headers={"Cache-Control": "max-age=60"})

    # -- authorization endpoint ---------------------------------------------------------

    async def authorize_form(self, request: web.Request) -> web.Response:
        checked = await self._check(_lists(request.query))
        if isinstance(checked, web.Response):
            return checked
        return self._show_form(checked)

    async def authorize_submit(self, request: web.Request) -> web.Response:
        form = await _read_form(request)
        if form is None:
            raise BadRequestError("The sign-in form could not be read (malformed body).")
        params = _lists(form, AUTHORIZE_PARAMS)
        flat = {k: v[0] for k, v in params.items() if len(v) == 1}
        ticket = form.get(TICKET_FIELD)
        if (
            len(flat) != len(params)
            or not isinstance(ticket, str)
            or not self.server.tickets.check(ticket, flat)
        ):
            detail = "This sign-in form is too old or was changed in transit."
            return _html(render_login_error("Sign-in expired", detail), 400)
        checked = await self._check(params)
        if isinstance(checked, web.Response):
            return checked
        username = str(form.get("username", ""))
        remote = request.remote  # the client's address (propdev.http.client_address)
        try:
            login = await self.server.login(
                username,
                str(form.get("password", "")),
                str(form.get("otp", "")),
                remote=remote,
                client_id=checked.client_id,
            )
        except LoginThrottledError as exc:
            seconds = max(1, math.ceil(exc.retry_after))
            log.warning("login_throttled", remote=remote, scope=exc.scope, retry_after=seconds)
            response = self._show_form(
                checked,
                error=_throttled_message(exc.scope, seconds),
                username=username,
                status=429,
            )
            response.headers["Retry-After"] = str(seconds)
            return response
        except LoginFailedError:
            log.warning("login_failed", remote=remote)
            return self._show_form(
                checked,
                error="Wrong username, password or one-time code.",
                username=username,
                status=401,
            )
        return _oauth_response(await self.server.authorize(params, login))

    async def _check(self, params: dict[str, list[str]]) -> AuthorizationRequest | web.Response:
        """The validated request, or the response to send instead (error page or redirect)."""
        try:
            checked = await self.server.check_authorization(params)
        except AuthorizationRequestError as exc:
            return _html(render_login_error("Cannot sign in", exc.description or exc.error), 400)
        if isinstance(checked, OAuthResponse):
            return _oauth_response(checked)
        return checked

    def _show_form(
        self,
        auth: AuthorizationRequest,
        *,
        error: str | None = None,
        username: str = "",
        status: int = 200,
    ) -> web.Response:
        ticket = self.server.tickets.issue(auth.params)
        page = render_login_page(
            auth, ticket=ticket, ticket_field=TICKET_FIELD, error=error, username=username
        )
        return _html(page, status)

    # -- token, revocation, userinfo ------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        return await self._form_endpoint(request, self.server.token)

    async def revoke(self, request: web.Request) -> web.Response:
        return await self._form_endpoint(request, self.server.revoke)

    async def _form_endpoint(self, request: web.Request, call: Any) -> web.Response:
        if request.content_type != _FORM_TYPE:
            return web.json_response(
                {"error": "invalid_request", "error_description": f"expected {_FORM_TYPE}"},
                status=400,
                headers=_NO_STORE,
            )
        remote = request.remote or ""  # the client's address (propdev.http.client_address)
        wait = await self.server.throttle.token_wait(remote)
        if wait:
            seconds = max(1, math.ceil(wait.seconds))
            log.warning("token_throttled", remote=remote, retry_after=seconds)
            return web.json_response(
                {
                    "error": "slow_down",
                    "error_description": "too many failed token requests from this address; "
                    f"retry in {seconds} s",
                },
                status=429,
                headers={"Retry-After": str(seconds), **_NO_STORE},
            )
        body = await _read_form(request)
        if body is None:
            return web.json_response(
                {"error": "invalid_request", "error_description": "malformed form body"},
                status=400,
                headers=_NO_STORE,
            )
        form = _lists(body)
        response = await call(
            form,
            CIMultiDict(request.headers),
            client_cert_der=self.certificate(request),
            remote=remote or None,
        )
        if response.status in (400, 401) and isinstance(response.body, dict):
            error = response.body.get("error")
            if error in ("invalid_grant", "invalid_client"):
                # Guessing codes or refresh tokens, or client certificates that do not fit:
                # counted in the token endpoint's own bucket, never against password logins.
                await self.server.throttle.token_failed(remote)
                log.warning("token_request_failed", error=error, remote=remote)
        return _oauth_response(response)

    async def userinfo(self, request: web.Request) -> web.Response:
        """GET or POST (OIDC Core §5.3.1); the token in the Authorization header or, over
        POST, in a form body's ``access_token`` (RFC 6750 §2.2), not both."""
        token = _bearer(request)
        if request.method == "POST" and request.content_type == _FORM_TYPE:
            form = await _read_form(request)
            in_body = form.get("access_token") if form is not None else None
            if form is None or (in_body is not None and token is not None):
                return web.json_response(
                    {"error": "invalid_request", "error_description": "one token, one way"},
                    status=400,
                    headers=_NO_STORE,
                )
            if isinstance(in_body, str) and in_body.strip():
                token = in_body.strip()
        if token is None:
            return web.json_response(
                {"error": "invalid_request"},
                status=401,
                headers={"WWW-Authenticate": "Bearer", **_NO_STORE},
            )
        try:
            info = await self.server.userinfo(token, client_cert_der=self.certificate(request))
        except InvalidTokenError as exc:
            return web.json_response(
                {"error": "invalid_token", "error_description": exc.reason},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"', **_NO_STORE},
            )
        return web.json_response(info, headers=_NO_STORE)


def oauth_routes(
    server: OAuthServer, *, client_certificate: CertificateGetter = client_certificate_der
) -> list[web.RouteDef]:
    """The authorization server's routes. ``client_certificate`` reads the client
    certificate DER of a request (default: from the TLS connection)."""
    h = _Handlers(server, client_certificate)
    return [
        web.get("/.well-known/openid-configuration", h.discovery, allow_head=False),
        web.get("/.well-known/oauth-authorization-server", h.discovery, allow_head=False),
        web.get("/oauth/jwks", h.jwks, allow_head=False),
        web.get("/oauth/authorize", h.authorize_form, allow_head=False),
        web.post("/oauth/authorize", h.authorize_submit),
        web.post("/oauth/token", h.token),
        web.post("/oauth/revoke", h.revoke),
        web.get("/oauth/userinfo", h.userinfo, allow_head=False),
        web.post("/oauth/userinfo", h.userinfo),
    ]
