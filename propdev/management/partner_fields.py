"""Reading a partner request's fields: each failure a ``PartnerRequestError`` (400) naming its
field; secrets to and from the JSON that is sealed in the store."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from propdev.management.errors import PartnerRequestError
from propdev.partners import ApiKey, Credential, OAuthClient


def error(field: str, detail: str) -> PartnerRequestError:
    return PartnerRequestError(field, detail)


def https_url(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) > 2000:
        raise error(field, "expected an https:// URL")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise error(field, "expected an https:// URL (plain HTTP is refused)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise error(field, "expected an https:// URL without credentials, query or fragment")
    return value.rstrip("/")


def cidrs(value: object) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > 100:
        raise error("allow_ips", "expected a list of 1 to 100 networks (CIDR)")
    try:
        return [str(ipaddress.ip_network(str(c), strict=False)) for c in value]
    except ValueError as exc:
        raise error("allow_ips", str(exc)) from None


def ca_pem(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise error("server_ca_pem", "expected PEM certificates or null (the system store)")
    try:
        certificates = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise error("server_ca_pem", "expected PEM certificates") from None
    if not certificates:
        raise error("server_ca_pem", "expected PEM certificates")
    return value


def number(value: object, field: str, low: float, high: float, *, integer: bool) -> Any:
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise error(field, f"expected {what} from {low:g} to {high:g}, or null")
    return value


def secret_text(value: object, field: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 4096 or value != value.strip():
        raise error(field, "expected 1 to 4096 characters without surrounding white space")
    return value


def credential(body: Mapping[str, Any]) -> Credential | None:
    if body.get("api_key") is not None and body.get("oauth") is not None:
        raise error("oauth", "give api_key or oauth, not both")
    if body.get("api_key") is not None:
        return ApiKey(secret_text(body["api_key"], "api_key"))
    oauth = body.get("oauth")
    if oauth is None:
        return None
    if not isinstance(oauth, dict) or set(oauth) - {
        "token_url",
        "client_id",
        "client_secret",
        "scope",
    }:
        raise error("oauth", "expected {token_url, client_id, client_secret, scope?}")
    scope = oauth.get("scope")
    return OAuthClient(
        https_url(oauth.get("token_url"), "oauth.token_url"),
        secret_text(oauth.get("client_id"), "oauth.client_id"),
        secret_text(oauth.get("client_secret"), "oauth.client_secret"),
        secret_text(scope, "oauth.scope") if scope is not None else None,
    )


def credential_json(credential: Credential) -> str:
    if isinstance(credential, ApiKey):
        return json.dumps({"kind": "api_key", "key": credential.key})
    return json.dumps(
        {
            "kind": "oauth",
            "token_url": credential.token_url,
            "client_id": credential.client_id,
            "client_secret": credential.client_secret,
            "scope": credential.scope,
        }
    )


def credential_of(text: str) -> Credential:
    data = json.loads(text)
    if data.get("kind") == "api_key":
        return ApiKey(str(data["key"]))
    return OAuthClient(
        str(data["token_url"]), str(data["client_id"]), str(data["client_secret"]), data["scope"]
    )
