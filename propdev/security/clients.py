"""OAuth clients: the mobile app and the browser pages (public, code + PKCE) and partners
(``tls_client_auth``)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin

from propdev.storage import Database, Row

PUBLIC_GRANTS = ("authorization_code", "refresh_token")
PARTNER_GRANTS = ("client_credentials",)
PARTNER_SCOPE = "partner"

WEB_APP_CLIENT_ID = "resident-web"
"""The resident web app (``/app/``, served by the node): a public client, code + PKCE."""
WEB_APP_PATH = "/app/"
WEB_APP_SCOPE = "openid profile api"


def address_in(remote: str | None, cidrs: Iterable[str]) -> bool:
    """True when ``remote`` is an IP address inside one of the networks ``cidrs``."""
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(c, strict=False) for c in cidrs)


@dataclasses.dataclass(slots=True)
class Client(ClientMixin):  # type: ignore[misc]  # authlib is untyped
    """One registered client, as authlib wants to see it.

    A fresh object per request: ``cert_thumbprint`` is set by ``tls_client_auth`` for the
    request that presented the certificate, and ends in the token's ``cnf``.
    """

    client_id: str
    client_name: str
    public: bool
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    token_endpoint_auth_method: str
    tls_client_auth_subject_dn: str | None = None
    allowed_cidrs: tuple[str, ...] = ()
    cert_thumbprint: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> Client:
        return cls(
            client_id=row["client_id"],
            client_name=row["client_name"],
            public=bool(row["public"]),
            redirect_uris=tuple(json.loads(row["redirect_uris"])),
            grant_types=tuple(row["grant_types"].split()),
            scope=row["scope"],
            token_endpoint_auth_method=row["token_endpoint_auth_method"],
            tls_client_auth_subject_dn=row["tls_client_auth_subject_dn"],
            allowed_cidrs=tuple(json.loads(row["allowed_cidrs"])),
        )

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is always required and compared exactly

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The requested scopes this client may have (down-scoping); None if none is left."""
        allowed = self.scope.split()
        if not scope:
            return self.scope
        granted = [s for s in dict.fromkeys(scope.split()) if s in allowed]
        return " ".join(granted) if granted else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # byte-equal, no prefix or pattern

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no client has a secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def address_allowed(self, remote: str | None) -> bool:
        """True when ``remote`` is inside one of ``allowed_cidrs`` (or none is registered)."""
        return not self.allowed_cidrs or address_in(remote, self.allowed_cidrs)


def load_client(db: Database, client_id: str) -> Client | None:
    """Sync: read a client in a worker thread."""
    row = db.sync_fetch_one("SELECT * FROM oauth_clients WHERE client_id = :c", c=client_id)
    return Client.from_row(row) if row is not None else None


def _check_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme.lower() in {"javascript", "data", "vbscript", "file", ""}:
        raise ValueError(f"redirect URI {uri!r}: scheme not allowed")
    if parts.fragment or "#" in uri:
        raise ValueError(f"redirect URI {uri!r}: must not have a fragment")
    if parts.scheme == "http" and parts.hostname not in {"127.0.0.1", "::1", "localhost"}:
        raise ValueError(f"redirect URI {uri!r}: http only on loopback")


_UPSERT = (
    "INSERT INTO oauth_clients (client_id, client_name, public, redirect_uris, grant_types,"
    " scope, token_endpoint_auth_method, tls_client_auth_subject_dn, allowed_cidrs, created_at)"
    " VALUES (:client_id, :client_name, :public, :redirect_uris, :grant_types, :scope,"
    " :method, :dn, :cidrs, :now)"
    " ON CONFLICT (client_id) DO UPDATE SET client_name = excluded.client_name,"
    " public = excluded.public, redirect_uris = excluded.redirect_uris,"
    " grant_types = excluded.grant_types, scope = excluded.scope,"
    " token_endpoint_auth_method = excluded.token_endpoint_auth_method,"
    " tls_client_auth_subject_dn = excluded.tls_client_auth_subject_dn,"
    " allowed_cidrs = excluded.allowed_cidrs"
)


async def register_public_client(
    db: Database,
    client_id: str,
    *,
    client_name: str,
    redirect_uris: Iterable[str],
    scope: str,
) -> None:
    """Register (or update) a public client: authorization code + PKCE, refresh tokens.

    Idempotent: a second call with the same ``client_id`` replaces its settings.
    """
    uris = list(redirect_uris)
    if not uris:
        raise ValueError("a public client needs at least one redirect URI")
    for uri in uris:
        _check_redirect_uri(uri)
    await db.execute(
        _UPSERT,
        client_id=client_id,
        client_name=client_name,
        public=True,
        redirect_uris=json.dumps(uris),
        grant_types=" ".join(PUBLIC_GRANTS),
        scope=" ".join(scope.split()),
        method="none",
        dn=None,
        cidrs="[]",
        now=time.time(),
    )


def web_app_redirect_uri(public_url: str) -> str:
    """Where the web app at ``public_url`` gets its code back: the page itself."""
    return public_url.rstrip("/") + WEB_APP_PATH


async def register_web_app_client(db: Database, public_url: str) -> None:
    """Register (or update) the resident web app's client for the node's public URL.

    Every node calls it at start (the page is the node's own, so its client follows
    ``PROPDEV_PUBLIC_URL``; nodes of one cluster share that URL), and so does ``seed-demo``.
    """
    await register_public_client(
        db,
        WEB_APP_CLIENT_ID,
        client_name="propdev resident web app",
        redirect_uris=[web_app_redirect_uri(public_url)],
        scope=WEB_APP_SCOPE,
    )


async def register_partner_client(
    db: Database,
    client_id: str,
    *,
    subject_dn: str,
    allowed_cidrs: Iterable[str],
    scope: str = PARTNER_SCOPE,
) -> None:
    """Register (or update) a partner: ``client_credentials`` with ``tls_client_auth``.

    ``subject_dn`` is the RFC 4514 subject of its certificate from the project CA; tokens
    are only issued to requests from ``allowed_cidrs``. Idempotent, like the public one.
    """
    await db.execute(_UPSERT, **partner_client_params(client_id, subject_dn, allowed_cidrs, scope))


def partner_client_params(
    client_id: str, subject_dn: str, allowed_cidrs: Iterable[str], scope: str = PARTNER_SCOPE
) -> dict[str, object]:
    """The parameters of ``PARTNER_CLIENT_UPSERT`` for a partner (to register it inside a
    transaction of the caller's)."""
    cidrs = [str(ipaddress.ip_network(c, strict=False)) for c in allowed_cidrs]
    return {
        "client_id": client_id,
        "client_name": client_id,
        "public": False,
        "redirect_uris": "[]",
        "grant_types": " ".join(PARTNER_GRANTS),
        "scope": " ".join(scope.split()),
        "method": "tls_client_auth",
        "dn": subject_dn,
        "cidrs": json.dumps(cidrs),
        "now": time.time(),
    }


PARTNER_CLIENT_UPSERT = _UPSERT
"""Registers or updates an OAuth client (see ``partner_client_params``)."""
