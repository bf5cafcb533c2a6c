"""JSON Schemas shared by the route declarations and the OpenAPI document.

``named(name, schema)`` registers a schema under ``#/components/schemas/<name>`` and returns a
``$ref`` to it; route modules use the refs in ``@doc(...)``. Plain dicts work as well, inline.
"""

from __future__ import annotations

from typing import Any

JSONSchema = dict[str, Any]

COMPONENTS: dict[str, JSONSchema] = {}


def named(name: str, schema: JSONSchema) -> JSONSchema:
    """Register ``schema`` as component ``name``; the same name twice must be the same schema."""
    known = COMPONENTS.setdefault(name, schema)
    if known != schema:
        raise ValueError(f"two different schemas named {name!r}")
    return {"$ref": f"#/components/schemas/{name}"}


def array_of(item: JSONSchema) -> JSONSchema:
    return {"type": "array", "items": item}


STRING: JSONSchema = {"type": "string"}
NULLABLE_STRING: JSONSchema = {"type": ["string", "null"]}
NUMBER: JSONSchema = {"type": "number"}
INTEGER: JSONSchema = {"type": "integer"}
BOOLEAN: JSONSchema = {"type": "boolean"}
ANY_OBJECT: JSONSchema = {"type": "object", "additionalProperties": True}

PROBLEM = named(
    "Problem",
    {
        "type": "object",
        "description": "An RFC 9457 problem document (`application/problem+json`).",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "a URI naming the kind of problem"},
            "title": STRING,
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": STRING,
        },
        "additionalProperties": True,
    },
)

OAUTH_ERROR = named(
    "OAuthError",
    {
        "type": "object",
        "description": "An OAuth 2.0 error answer (RFC 6749 section 5.2).",
        "required": ["error"],
        "properties": {"error": STRING, "error_description": STRING, "error_uri": STRING},
        "additionalProperties": True,
    },
)

ME = named(
    "Me",
    {
        "type": "object",
        "required": ["id", "username", "roles"],
        "properties": {
            "id": STRING,
            "username": STRING,
            "roles": array_of(STRING),
            "full_name": NULLABLE_STRING,
            "amr": array_of(STRING),
        },
        "additionalProperties": True,
    },
)

ACCESS_POINT_KIND: JSONSchema = {"type": "string", "enum": ["door", "barrier"]}

ACCESS_POINT = named(
    "AccessPoint",
    {
        "type": "object",
        "required": ["id", "name", "kind", "site_id", "online"],
        "properties": {
            "id": STRING,
            "name": STRING,
            "kind": ACCESS_POINT_KIND,
            "site_id": STRING,
            "building_id": NULLABLE_STRING,
            "online": {
                "type": ["boolean", "null"],
                "description": "last known state; null when never seen",
            },
        },
        "additionalProperties": True,
    },
)

ACCESS_POINT_DETAIL = named(
    "AccessPointDetail",
    {
        "type": "object",
        "description": "An access point with its device actor's live state.",
        "required": ["id", "name", "kind", "site_id"],
        "properties": {
            "id": STRING,
            "name": STRING,
            "kind": ACCESS_POINT_KIND,
            "site_id": STRING,
            "building_id": NULLABLE_STRING,
            "online": {"type": ["boolean", "null"]},
        },
        "additionalProperties": True,
    },
)

OPEN_GRANTED = named(
    "OpenGranted",
    {
        "type": "object",
        "required": ["status", "command_id", "access_point_id"],
        "properties": {
            "status": {"const": "granted"},
            "command_id": STRING,
            "access_point_id": STRING,
            "vendor_command_id": NULLABLE_STRING,
        },
        "additionalProperties": True,
    },
)

EVENT = named(
    "Event",
    {
        "type": "object",
        "required": ["id", "type", "occurred_at"],
        "properties": {
            "id": INTEGER,
            "type": {"type": "string", "examples": ["access.granted", "access.denied"]},
            "access_point_id": NULLABLE_STRING,
            "occurred_at": {"type": ["number", "string"]},
            "command_id": NULLABLE_STRING,
        },
        "additionalProperties": True,
    },
)

COMMAND = named(
    "Command",
    {
        "type": "object",
        "required": ["id", "access_point_id", "status"],
        "properties": {
            "id": STRING,
            "access_point_id": STRING,
            "status": STRING,
            "reason": NULLABLE_STRING,
            "created_at": {"type": ["number", "string", "null"]},
            "updated_at": {"type": ["number", "string", "null"]},
        },
        "additionalProperties": True,
    },
)

ACTOR_TREE = named(
    "ActorTree",
    {
        "type": "object",
        "description": "The supervision tree: node -> supervisors -> actors.",
        "required": ["node", "state", "supervisors", "actors"],
        "properties": {
            "node": STRING,
            "state": STRING,
            "failed": BOOLEAN,
            "restarts": INTEGER,
            "supervisors": array_of(ANY_OBJECT),
            "actors": array_of(ANY_OBJECT),
        },
        "additionalProperties": True,
    },
)

AUDIT_ENTRY = named(
    "AuditEntry",
    {
        "type": "object",
        "required": ["id", "actor", "action", "decision"],
        "properties": {
            "id": INTEGER,
            "at": {"type": ["number", "string"]},
            "actor": STRING,
            "action": STRING,
            "access_point_id": NULLABLE_STRING,
            "decision": STRING,
            "reason": NULLABLE_STRING,
            "command_id": NULLABLE_STRING,
            "hash": STRING,
            "prev_hash": STRING,
        },
        "additionalProperties": True,
    },
)

AUDIT_PAGE = named(
    "AuditPage",
    {
        "type": "object",
        "required": ["entries", "next"],
        "properties": {
            "entries": array_of(AUDIT_ENTRY),
            "next": {"type": ["integer", "null"], "description": "pass as `after` for more"},
        },
        "additionalProperties": False,
    },
)
