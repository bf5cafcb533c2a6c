"""Documentation of the routes ``app.public_routes`` wraps: the OAuth 2.0 / OIDC server's
(``propdev.http.routes.oauth`` in front of ``propdev.security``) and the simulator's control
API (mounted in embedded mode only). Keyed by (method, path) as the router has them.
"""

from __future__ import annotations

from propdev.http.openapi import Operation, Param, Response, operation
from propdev.http.permissions import Permission
from propdev.http.schemas import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    NULLABLE_STRING,
    OAUTH_ERROR,
    PROBLEM,
    STRING,
    array_of,
    named,
    object_of,
)

HTML = "text/html"
FORM = "application/x-www-form-urlencoded"
OAUTH = ("oauth",)
SIM = ("simulator",)

DISCOVERY = named(
    "OpenIDConfiguration",
    object_of(
        {
            "issuer": STRING,
            "authorization_endpoint": STRING,
            "token_endpoint": STRING,
            "jwks_uri": STRING,
            "userinfo_endpoint": STRING,
            "revocation_endpoint": STRING,
            "grant_types_supported": array_of(STRING),
            "code_challenge_methods_supported": array_of({"const": "S256"}),
            "token_endpoint_auth_methods_supported": array_of(STRING),
            "tls_client_certificate_bound_access_tokens": BOOLEAN,
            "claims_supported": array_of(STRING),
            "prompt_values_supported": array_of(STRING),
            "request_parameter_supported": BOOLEAN,
            "request_uri_parameter_supported": BOOLEAN,
        },
        required=[
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "code_challenge_methods_supported",
        ],
        additional=True,
    ),
)
JWKS = named(
    "JWKS",
    object_of({"keys": array_of(ANY_OBJECT)}, required=["keys"], additional=True),
)
TOKEN = named(
    "TokenResponse",
    object_of(
        {
            "access_token": STRING,
            "token_type": STRING,
            "expires_in": INTEGER,
            "refresh_token": STRING,
            "id_token": STRING,
            "scope": STRING,
        },
        required=["access_token", "token_type"],
        additional=True,
    ),
)
TOKEN_REQUEST = named(
    "TokenRequest",
    object_of(
        {
            "grant_type": {
                "type": "string",
                "enum": ["authorization_code", "refresh_token", "client_credentials"],
            },
            "code": STRING,
            "redirect_uri": STRING,
            "client_id": STRING,
            "code_verifier": STRING,
            "refresh_token": STRING,
            "scope": STRING,
        },
        required=["grant_type"],
    ),
)
AUTHORIZE_QUERY = (
    Param("response_type", {"const": "code"}, required=True),
    Param("client_id", required=True),
    Param("redirect_uri", required=True),
    Param("code_challenge", required=True, description="BASE64URL(SHA-256(code_verifier))"),
    Param("code_challenge_method", {"const": "S256"}, required=True),
    Param("scope"),
    Param("state"),
    Param("nonce"),
    Param(
        "prompt",
        description=(
            "`login` (always so); `none` is answered with `error=login_required` (there is no "
            "sign-in session to reuse)"
        ),
    ),
    Param("request", description="Not supported: `error=request_not_supported`"),
    Param("request_uri", description="Not supported: `error=request_uri_not_supported`"),
)
FAULTS = named(
    "SimulatorFaults",
    object_of(
        {
            "mode": {"type": "string", "enum": ["ok", "error", "slow", "deny", "drop", "outage"]},
            "latency_ms": {"type": "number"},
        },
        required=["mode", "latency_ms"],
        additional=True,
    ),
)
SIM_DEVICE = named(
    "SimulatorDevice",
    object_of(
        {
            "device_id": STRING,
            "kind": STRING,
            "name": STRING,
            "online": BOOLEAN,
            "state": STRING,
            "last_seen": NULLABLE_STRING,
        },
        required=["device_id", "kind", "online"],
        additional=True,
    ),
)
SIM_ERROR = named(
    "SimulatorError",
    object_of({"error": STRING, "message": STRING}, required=["error"], additional=True),
)
_OAUTH_400 = Response(OAUTH_ERROR, "An OAuth error (RFC 6749 section 5.2).")
_OAUTH_401 = Response(
    OAUTH_ERROR, "The client or token failed authentication.", headers={"WWW-Authenticate": ""}
)
_HTML_PAGE = Response({"type": "string"}, "An HTML page.", HTML)
_REDIRECT = Response(None, "A redirect to the client's `redirect_uri` with `code` and `state`.")

EXTERNAL: dict[tuple[str, str], Operation] = {
    ("GET", "/.well-known/openid-configuration"): operation(
        "OpenID Connect discovery", tags=OAUTH, responses={200: DISCOVERY}
    ),
    ("GET", "/.well-known/oauth-authorization-server"): operation(
        "OAuth 2.0 authorization server metadata (RFC 8414)", tags=OAUTH, responses={200: DISCOVERY}
    ),
    ("GET", "/oauth/jwks"): operation(
        "The public keys that sign access tokens", tags=OAUTH, responses={200: JWKS}
    ),
    ("GET", "/oauth/authorize"): operation(
        "Start the authorization code + PKCE flow: the login form",
        description=(
            "Shows an HTML form with inputs `username`, `password` and, for accounts with 2FA, "
            "`otp`; other inputs are hidden fields. An invalid request to a known client is "
            "redirected back to it with `error` (and `state`), `prompt=none` with "
            "`login_required`, a request object with `request_not_supported` or "
            "`request_uri_not_supported`. A request that cannot be redirected back (unknown "
            "client, unregistered `redirect_uri`, characters RFC 6749 does not allow) gets an "
            "error page."
        ),
        tags=OAUTH,
        query=AUTHORIZE_QUERY,
        responses={
            200: _HTML_PAGE,
            302: _REDIRECT,
            303: _REDIRECT,
            400: Response({"type": "string"}, "The request cannot be redirected back.", HTML),
        },
    ),
    ("POST", "/oauth/authorize"): operation(
        "Submit the login form",
        tags=OAUTH,
        request={"type": "object", "additionalProperties": {"type": "string"}},
        request_content_type=FORM,
        responses={
            302: _REDIRECT,
            303: _REDIRECT,
            400: Response(
                {"type": "string"},
                "The form is stale or was changed (a body that cannot be parsed: a problem "
                "document).",
                HTML,
            ),
            401: Response({"type": "string"}, "Wrong credentials: the form again.", HTML),
            429: Response(
                {"type": "string"},
                "Sign-in throttled, credentials not checked: the form again, saying whether "
                "the account (failures per account and per account and address, back-off "
                "doubling to 15 min) or the client's address (PROPDEV_AUTH_FAILURES_PER_IP "
                "failures in 5 min) must wait; a rate limit gives a problem document instead.",
                HTML,
                {"Retry-After": "seconds to wait"},
            ),
        },
    ),
    ("POST", "/oauth/token"): operation(
        "Token endpoint: authorization_code, refresh_token, client_credentials",
        description=(
            "Refresh tokens rotate on every use; reusing a spent one revokes the whole family. "
            "`client_credentials` is for partners over mutual TLS; their token is bound to the "
            "certificate (`cnf.x5t#S256`)."
        ),
        tags=OAUTH,
        request=TOKEN_REQUEST,
        request_content_type=FORM,
        responses={
            200: TOKEN,
            400: _OAUTH_400,
            401: _OAUTH_401,
            429: Response(
                object_of({"error": STRING, "error_description": STRING}),
                "`slow_down`: too many failed token requests (bad codes, refresh tokens or "
                "client credentials) from the client's address, PROPDEV_AUTH_FAILURES_PER_IP "
                "in 5 min; counted apart from sign-ins (a rate limit gives a problem document).",
                "application/json",
                {"Retry-After": "seconds to wait"},
            ),
        },
    ),
    ("POST", "/oauth/revoke"): operation(
        "Revoke a token (RFC 7009)",
        tags=OAUTH,
        description=(
            "A refresh token is revoked with its whole family; a valid access token, presented "
            "by the client it was issued to, is refused by every node until it expires."
        ),
        request=object_of(
            {"token": STRING, "token_type_hint": STRING, "client_id": STRING}, required=["token"]
        ),
        request_content_type=FORM,
        responses={200: None, 400: _OAUTH_400, 401: _OAUTH_401},
    ),
    ("GET", "/oauth/userinfo"): operation(
        "OpenID Connect userinfo",
        tags=OAUTH,
        security=Permission.AUTHENTICATED,
        responses={
            200: object_of({"sub": STRING}, required=["sub"]),
            401: _OAUTH_401,
            403: _OAUTH_401,
        },
    ),
    ("POST", "/oauth/userinfo"): operation(
        "OpenID Connect userinfo, over POST (OIDC Core 5.3.1)",
        description=(
            "The same answer as GET. The access token goes in the `Authorization` header or, "
            "form-encoded, in the body's `access_token` (RFC 6750 section 2.2), not both."
        ),
        tags=OAUTH,
        request=object_of({"access_token": STRING}),
        request_content_type=FORM,
        request_required=False,  # with the token in the header there is nothing to send
        security=Permission.AUTHENTICATED,
        responses={
            200: object_of({"sub": STRING}, required=["sub"]),
            401: _OAUTH_401,
            403: _OAUTH_401,
            400: _OAUTH_400,
        },
    ),
    ("GET", "/sim/v1/faults"): operation(
        "Simulator: the injected fault", tags=SIM, responses={200: FAULTS}
    ),
    ("POST", "/sim/v1/faults"): operation(
        "Simulator: inject a fault",
        tags=SIM,
        request=object_of(
            {
                "mode": {
                    "type": "string",
                    "enum": ["ok", "error", "slow", "deny", "drop", "outage"],
                },
                "latency_ms": {"type": "integer", "minimum": 0, "maximum": 600_000},
            },
            additional=False,
        ),
        responses={200: FAULTS, 400: PROBLEM},
    ),
    ("GET", "/sim/v1/commands"): operation(
        "Simulator: the commands it received",
        tags=SIM,
        responses={200: array_of(ANY_OBJECT)},
    ),
    ("POST", "/sim/v1/reset"): operation(
        "Simulator: forget commands and faults", tags=SIM, responses={204: None}
    ),
    ("POST", "/sim/v1/devices"): operation(
        "Simulator: add or replace a device",
        tags=SIM,
        request=object_of(
            {
                "device_id": {"type": "string", "minLength": 1},
                "kind": {"type": "string", "enum": ["door", "barrier"]},
                "name": STRING,
                "online": BOOLEAN,
            },
            required=["device_id"],
        ),
        responses={201: SIM_DEVICE, 400: PROBLEM},
    ),
    ("PATCH", "/sim/v1/devices/{device_id}"): operation(
        "Simulator: change a device's state",
        tags=SIM,
        request=object_of({"online": {"type": ["boolean", "null"]}, "state": NULLABLE_STRING}),
        responses={
            200: SIM_DEVICE,
            400: PROBLEM,
            404: Response(SIM_ERROR, "No such device."),
        },
    ),
}

# The simulator's callback controls, and the same control API for the acme vendor.
_PASSAGES = object_of(
    {"after_open_ms": {"type": ["integer", "null"], "minimum": 0, "maximum": 600_000}},
    additional=False,  # the simulator refuses any other key
)
EXTERNAL[("GET", "/sim/v1/passages")] = operation(
    "Simulator: the entry that follows an open", tags=SIM, responses={200: _PASSAGES}
)
EXTERNAL[("POST", "/sim/v1/passages")] = operation(
    "Simulator: follow each confirmed open with an entry N ms later (null: never)",
    tags=SIM,
    request=_PASSAGES,
    responses={200: _PASSAGES, 400: PROBLEM},
)
EXTERNAL[("POST", "/sim/v1/callbacks/flush")] = operation(
    "Simulator: answer once every callback made so far was delivered",
    tags=SIM,
    responses={204: None},
)
EXTERNAL[("POST", "/sim/v1/events")] = operation(
    "Simulator: call an event back now (a device's entry, plate, code, state…), queued behind "
    "the callbacks made so far, as the vendor's own events are",
    tags=SIM,
    request=object_of(
        {"device_id": STRING, "type": STRING}, required=["device_id", "type"], additional=True
    ),
    responses={202: {"type": "object"}, 400: PROBLEM},
)
EXTERNAL[("GET", "/sim/v1/signatures")] = operation(
    "Simulator: whether API calls must carry our RFC 9421 signature, and how many were "
    "verified or refused (by reason)",
    tags=SIM,
    responses={
        200: object_of(
            {
                "required": BOOLEAN,
                "key_id": STRING,
                "verified": {"type": "integer", "minimum": 0},
                "refused": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
            required=["required"],
        )
    },
)
for (_method, _path), _op in list(EXTERNAL.items()):
    if _path.startswith("/sim/v1/"):
        EXTERNAL[(_method, "/sim/acme/v1/" + _path.removeprefix("/sim/v1/"))] = operation(
            _op.summary.replace("Simulator:", "Acme simulator:"),
            tags=SIM,
            request=_op.request,
            responses=dict(_op.responses),
        )
