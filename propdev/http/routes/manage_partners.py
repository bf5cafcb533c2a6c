"""``/admin/api/v1/partners``: partners as data (``propdev.management.partners``).

Register, read, change and delete partners; sign a partner's CSR; rotate its webhook secret.
Secrets are answered once, when made (the webhook secret), and never read back. Every change is
audited and applied on every node through the bus. Bad input is a 400 problem naming the field.
"""

from __future__ import annotations

from aiohttp import web

from propdev.http import schemas
from propdev.http.keys import PARTNER_REGISTRY
from propdev.http.openapi import doc
from propdev.http.routes.manage_support import CONFLICT, actor, body
from propdev.http.scope import ORGANISATION_ONLY, scoped
from propdev.management import SECRET_OVERLAP, PartnerRegistry
from propdev.staff import Action

routes = web.RouteTableDef()

TAGS = ["management", "partners"]
BAD = "Bad input (`field` names it): nothing was stored."
NAME: schemas.JSONSchema = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}
HTTPS_URL: schemas.JSONSchema = {"type": "string", "format": "uri", "pattern": "^https://"}
NULLABLE_NUMBER: schemas.JSONSchema = {"type": ["number", "null"]}
NULLABLE_INTEGER: schemas.JSONSchema = {"type": ["integer", "null"]}
OAUTH = schemas.object_of(
    {
        "token_url": HTTPS_URL,
        "client_id": schemas.STRING,
        "client_secret": schemas.STRING,
        "scope": schemas.STRING,
    },
    required=["token_url", "client_id", "client_secret"],
    additional=False,
)
_SETTINGS: dict[str, schemas.JSONSchema] = {
    "adapter": {**schemas.STRING, "description": "a registered adapter (`simulator`, `acme`…)"},
    "base_url": {**HTTPS_URL, "description": "the vendor's API; HTTPS only"},
    "allow_ips": {
        "type": "array",
        "items": schemas.STRING,
        "minItems": 1,
        "description": "networks (CIDR) the partner calls us from",
    },
    "server_ca_pem": {
        "type": ["string", "null"],
        "description": "PEM CA(s) of the vendor's server certificate; null: the system store",
    },
    "api_key": {
        "type": ["string", "null"],
        "description": "the key the vendor gave us (stored sealed, never answered)",
    },
    "oauth": {
        "oneOf": [OAUTH, {"type": "null"}],
        "description": "or OAuth client credentials at the vendor (sealed, never answered)",
    },
    "rate_limit": {**NULLABLE_NUMBER, "description": "calls per second to the vendor"},
    "bulkhead": {**NULLABLE_INTEGER, "description": "calls in flight at most"},
    "breaker_failures": {**NULLABLE_INTEGER, "description": "failures that open the circuit"},
    "breaker_reset": {**NULLABLE_NUMBER, "description": "seconds an open circuit waits"},
    "timeout": {**NULLABLE_NUMBER, "description": "seconds a call may take"},
}
PARTNER_REQUEST = schemas.named(
    "PartnerRequest",
    schemas.object_of(
        {"name": NAME, **_SETTINGS},
        required=["name", "adapter", "base_url", "allow_ips"],
        additional=False,
    ),
)
PARTNER_CHANGE = schemas.named(
    "PartnerChange", schemas.object_of(dict(_SETTINGS), additional=False)
)
PARTNER_CREATED = schemas.named(
    "PartnerCreated",
    schemas.object_of(
        {
            "name": schemas.STRING,
            "client_id": schemas.STRING,
            "webhook_secret": {
                **schemas.STRING,
                "description": "signs the partner's webhooks; shown only here",
            },
        },
        required=["name", "client_id", "webhook_secret"],
    ),
)
PARTNER = schemas.named(
    "Partner",
    schemas.object_of(
        {
            "name": schemas.STRING,
            "client_id": schemas.STRING,
            "adapter": schemas.STRING,
            "base_url": {"type": ["string", "null"]},
            "allow_ips": schemas.array_of(schemas.STRING),
            "server_ca": {"type": "string", "enum": ["pem", "system"]},
            "credential": {"type": ["string", "null"], "enum": ["api_key", "oauth", None]},
            "rate_limit": NULLABLE_NUMBER,
            "bulkhead": NULLABLE_INTEGER,
            "breaker_failures": NULLABLE_INTEGER,
            "breaker_reset": NULLABLE_NUMBER,
            "timeout": NULLABLE_NUMBER,
            "previous_webhook_secret_until": {
                **NULLABLE_NUMBER,
                "description": "until when the previous webhook secret is accepted (epoch s)",
            },
            "certificates": schemas.array_of(
                schemas.object_of(
                    {
                        "serial": schemas.STRING,
                        "not_before": schemas.NUMBER,
                        "not_after": schemas.NUMBER,
                        "revoked": schemas.BOOLEAN,
                    },
                    required=["serial", "not_before", "not_after", "revoked"],
                )
            ),
            "version": schemas.INTEGER,
        },
        required=["name", "client_id", "adapter", "allow_ips", "credential", "version"],
    ),
)
CSR_REQUEST = schemas.named(
    "PartnerCsr",
    schemas.object_of(
        {"csr_pem": {**schemas.STRING, "description": "PEM PKCS#10, subject CN=<name>"}},
        required=["csr_pem"],
        additional=False,
    ),
)
CERTIFICATE = schemas.named(
    "PartnerCertificate",
    schemas.object_of(
        {"certificate_pem": schemas.STRING, "ca_pem": schemas.STRING},
        required=["certificate_pem", "ca_pem"],
    ),
)
REVOKED = schemas.named(
    "PartnerCertificatesRevoked",
    schemas.object_of({"revoked": schemas.INTEGER}, required=["revoked"]),
)
SECRET = schemas.named(
    "PartnerWebhookSecret",
    schemas.object_of({"webhook_secret": schemas.STRING}, required=["webhook_secret"]),
)
NOT_FOUND = "No such partner."


def registry(request: web.Request) -> PartnerRegistry:
    return request.app[PARTNER_REGISTRY]


@routes.get("/admin/api/v1/partners")
@scoped(Action.SYSTEM_READ, ORGANISATION_ONLY)
@doc("List partners (never their secrets)", tags=TAGS, responses={200: schemas.array_of(PARTNER)})
async def list_partners(request: web.Request) -> web.Response:
    return web.json_response(await registry(request).all())


@routes.post("/admin/api/v1/partners")
@scoped(Action.PARTNERS_MANAGE, ORGANISATION_ONLY)
@doc(
    "Register a partner",
    description=(
        "Its OAuth client (`client_credentials` with `tls_client_auth`, subject "
        "`CN=<name>,O=propdev partners`) is made with it; get its client certificate with "
        "`POST /admin/api/v1/partners/{name}/certificate`. The webhook secret is shown only "
        "in this answer. Every node calls the partner within a second, no restart. Audited as "
        "`partner.create`."
    ),
    tags=TAGS,
    request=PARTNER_REQUEST,
    responses={201: PARTNER_CREATED, 400: BAD, 409: CONFLICT},
)
async def create_partner(request: web.Request) -> web.Response:
    created = await registry(request).create(actor(request), await body(request))
    return web.json_response(created, status=201)


@routes.get("/admin/api/v1/partners/{name}")
@scoped(Action.SYSTEM_READ, ORGANISATION_ONLY)
@doc("One partner (never its secrets)", tags=TAGS, responses={200: PARTNER, 404: NOT_FOUND})
async def get_partner(request: web.Request) -> web.Response:
    return web.json_response(await registry(request).get(request.match_info["name"]))


@routes.patch("/admin/api/v1/partners/{name}")
@scoped(Action.PARTNERS_MANAGE, ORGANISATION_ONLY)
@doc(
    "Change a partner",
    description=(
        "Only the fields given change (`null` resets a limit to the node's setting, "
        "`server_ca_pem: null` trusts the system store). Every node takes the change within a "
        "second: a new gateway, its breaker closed. Audited as `partner.change`."
    ),
    tags=TAGS,
    request=PARTNER_CHANGE,
    responses={200: PARTNER, 400: BAD, 404: NOT_FOUND},
)
async def change_partner(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return web.json_response(
        await registry(request).update(actor(request), name, await body(request))
    )


@routes.delete("/admin/api/v1/partners/{name}")
@scoped(Action.PARTNERS_MANAGE, ORGANISATION_ONLY)
@doc(
    "Delete a partner",
    description=(
        "Every node stops calling it and refuses its callbacks; its OAuth client goes, its "
        "certificates are revoked (CRL). Its access points and history stay. Audited as "
        "`partner.delete`."
    ),
    tags=TAGS,
    responses={204: None, 404: NOT_FOUND},
)
async def delete_partner(request: web.Request) -> web.Response:
    await registry(request).delete(actor(request), request.match_info["name"])
    return web.Response(status=204)


@routes.post("/admin/api/v1/partners/{name}/certificate")
@scoped(Action.PARTNERS_MANAGE, ORGANISATION_ONLY)
@doc(
    "Sign a partner's CSR",
    description=(
        "A client certificate from the project CA for the partner's own key (the key never "
        "reaches us), valid `PROPDEV_PARTNER_CERT_DAYS`. The request's subject must be "
        "`CN=<name>` (DNS names, if any, only `<name>`), its key RSA ≥ 2048 bits or EC "
        "P-256/P-384, its signature valid; else 400, nothing signed. A new CSR while a "
        "certificate is valid renews it: both stay valid until each expires or is revoked. "
        "Audited as `partner.certificate`."
    ),
    tags=TAGS,
    request=CSR_REQUEST,
    responses={201: CERTIFICATE, 400: BAD, 404: NOT_FOUND},
)
async def sign_certificate(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    signed = await registry(request).certificate(actor(request), name, await body(request))
    return web.json_response(signed, status=201)


@routes.delete("/admin/api/v1/partners/{name}/certificate")
@scoped(Action.PARTNERS_MANAGE, ORGANISATION_ONLY)
@doc(
    "Revoke a partner's certificates",
    description=(
        "Every certificate signed for the partner goes on the CRL: its TLS handshakes and "
        "calls are refused from now on. Audited as `partner.certificate`."
    ),
    tags=TAGS,
    responses={200: REVOKED, 404: NOT_FOUND},
)
async def revoke_certificates(request: web.Request) -> web.Response:
    count = await registry(request).revoke_certificates(actor(request), request.match_info["name"])
    return web.json_response({"revoked": count})


@routes.post("/admin/api/v1/partners/{name}/webhook-secret")
@scoped(Action.PARTNERS_MANAGE, ORGANISATION_ONLY)
@doc(
    "Rotate a partner's webhook secret",
    description=(
        f"A new secret, shown only here; the previous one is still accepted for "
        f"{int(SECRET_OVERLAP // 3600)} h (a webhook may carry several `v1,` signatures). "
        "Audited as `partner.webhook_secret`."
    ),
    tags=TAGS,
    responses={201: SECRET, 404: NOT_FOUND},
)
async def rotate_secret(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    rotated = await registry(request).rotate_webhook_secret(actor(request), name)
    return web.json_response(rotated, status=201)
