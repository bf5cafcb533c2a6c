"""JSON Schemas shared by the route declarations and the OpenAPI document.

``named(name, schema)`` registers a schema under ``#/components/schemas/<name>`` and returns a
``$ref`` to it; route modules use the refs in ``@doc(...)``. Plain dicts work as well, inline.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def object_of(
    properties: dict[str, JSONSchema],
    *,
    required: Sequence[str] = (),
    description: str | None = None,
    additional: bool | None = None,
) -> JSONSchema:
    """An object with ``properties``: ``required`` ones, an optional ``description``, and
    ``additional`` (``additionalProperties``) when it is given."""
    schema: JSONSchema = {"type": "object"}
    if description is not None:
        schema["description"] = description
    if required:
        schema["required"] = list(required)
    schema["properties"] = properties
    if additional is not None:
        schema["additionalProperties"] = additional
    return schema


STRING: JSONSchema = {"type": "string"}
NULLABLE_STRING: JSONSchema = {"type": ["string", "null"]}
NUMBER: JSONSchema = {"type": "number"}
INTEGER: JSONSchema = {"type": "integer"}
BOOLEAN: JSONSchema = {"type": "boolean"}
ANY_OBJECT: JSONSchema = {"type": "object", "additionalProperties": True}

PROBLEM = named(
    "Problem",
    object_of(
        {
            "type": {"type": "string", "description": "a URI naming the kind of problem"},
            "title": STRING,
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": STRING,
        },
        required=["type", "title", "status", "detail"],
        description="An RFC 9457 problem document (`application/problem+json`).",
        additional=True,
    ),
)

OAUTH_ERROR = named(
    "OAuthError",
    object_of(
        {"error": STRING, "error_description": STRING, "error_uri": STRING},
        required=["error"],
        description="An OAuth 2.0 error answer (RFC 6749 section 5.2).",
        additional=True,
    ),
)

ME = named(
    "Me",
    object_of(
        {
            "id": STRING,
            "username": STRING,
            "roles": array_of(STRING),
            "full_name": NULLABLE_STRING,
            "amr": array_of(STRING),
        },
        required=["id", "username", "roles"],
        additional=True,
    ),
)

ACCESS_POINT_KIND: JSONSchema = {"type": "string", "enum": ["door", "barrier"]}
_ACCESS_POINT_FIELDS: dict[str, JSONSchema] = {
    "id": STRING,
    "name": STRING,
    "kind": ACCESS_POINT_KIND,
    "site_id": STRING,
    "building_id": NULLABLE_STRING,
}

ACCESS_POINT = named(
    "AccessPoint",
    object_of(
        {
            **_ACCESS_POINT_FIELDS,
            "online": {
                "type": ["boolean", "null"],
                "description": "last known state; null when never seen",
            },
        },
        required=["id", "name", "kind", "site_id", "online"],
        additional=True,
    ),
)

ACCESS_POINT_DETAIL = named(
    "AccessPointDetail",
    object_of(
        {**_ACCESS_POINT_FIELDS, "online": {"type": ["boolean", "null"]}},
        required=["id", "name", "kind", "site_id"],
        description="An access point with its device actor's live state.",
        additional=True,
    ),
)

OPEN_GRANTED = named(
    "OpenGranted",
    object_of(
        {
            "status": {"const": "granted"},
            "command_id": STRING,
            "access_point_id": STRING,
            "vendor_command_id": NULLABLE_STRING,
        },
        required=["status", "command_id", "access_point_id"],
        additional=True,
    ),
)

EVENT = named(
    "Event",
    object_of(
        {
            "id": INTEGER,
            "type": {"type": "string", "examples": ["access.granted", "access.denied"]},
            "access_point_id": NULLABLE_STRING,
            "occurred_at": {"type": ["number", "string"]},
            "command_id": NULLABLE_STRING,
        },
        required=["id", "type", "occurred_at"],
        additional=True,
    ),
)

COMMAND = named(
    "Command",
    object_of(
        {
            "id": STRING,
            "access_point_id": STRING,
            "status": STRING,
            "reason": NULLABLE_STRING,
            "created_at": {"type": ["number", "string", "null"]},
            "updated_at": {"type": ["number", "string", "null"]},
        },
        required=["id", "access_point_id", "status"],
        additional=True,
    ),
)

ACTOR_TREE = named(
    "ActorTree",
    object_of(
        {
            "node": STRING,
            "state": STRING,
            "failed": BOOLEAN,
            "restarts": INTEGER,
            "supervisors": array_of(ANY_OBJECT),
            "actors": array_of(ANY_OBJECT),
        },
        required=["node", "state", "supervisors", "actors"],
        description="The supervision tree: node -> supervisors -> actors.",
        additional=True,
    ),
)

AUDIT_ENTRY = named(
    "AuditEntry",
    object_of(
        {
            "id": INTEGER,
            "at": {"type": ["number", "string"]},
            "actor": STRING,
            "action": STRING,
            "access_point_id": NULLABLE_STRING,
            "decision": {
                "type": "string",
                "enum": ["granted", "denied", "failed"],
                "description": "failed: nobody said no, but it did not happen (docs/audit.md).",
            },
            "reason": NULLABLE_STRING,
            "command_id": NULLABLE_STRING,
            "subject": {
                "type": ["string", "null"],
                "description": "The user id of the person the entry concerns, if any.",
            },
            "personal": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "string"},
                "description": (
                    "Personal fields (attempted username, source address...), kept apart "
                    "from the hash chain; null when none, or once erased or past retention."
                ),
            },
            "hash": STRING,
            "prev_hash": STRING,
        },
        required=["id", "actor", "action", "decision"],
        additional=True,
    ),
)

AUDIT_PAGE = named(
    "AuditPage",
    object_of(
        {
            "entries": array_of(AUDIT_ENTRY),
            "next": {"type": ["integer", "null"], "description": "pass as `after` for more"},
        },
        required=["entries", "next"],
        additional=False,
    ),
)
