"""The audit's last signed checkpoint (``propdev.integrity``), for operators and the console."""

from __future__ import annotations

from aiohttp import web

from propdev.http import schemas
from propdev.http.keys import DATABASE
from propdev.http.openapi import doc
from propdev.http.scope import LISTED, scoped
from propdev.integrity import CheckpointStore
from propdev.staff import Action

routes = web.RouteTableDef()

CHECKPOINT = schemas.named(
    "AuditCheckpoint",
    schemas.object_of(
        {
            "seq": {"type": "integer", "minimum": 1, "description": "1, 2, ... in order"},
            "at": {"type": "number", "description": "when it was signed (Unix seconds)"},
            "entries": {"type": "integer", "minimum": 0, "description": "of all chains"},
            "chains": {"type": "integer", "minimum": 0},
            "root": {"type": "string", "description": "RFC 6962 Merkle root, base64"},
            "key_id": {"type": "string", "description": "the checkpoint key's id, hex"},
            "node_id": schemas.STRING,
            "note": {"type": "string", "description": "the C2SP signed note"},
        },
        required=["seq", "at", "entries", "chains", "root", "key_id", "node_id", "note"],
        additional=False,
    ),
)


@routes.get("/admin/api/v1/audit/checkpoint")
@scoped(Action.AUDIT_READ, LISTED)  # the whole log's: no resource of any site
@doc(
    "The audit's last signed checkpoint over the heads of all chains",
    description=(
        "`checkpoint` is null until the first is written. Verify it offline with "
        "`python run.py audit verify` and the checkpoint keys (docs/audit-integrity.md)."
    ),
    tags=["admin"],
    responses={
        200: schemas.object_of(
            {"checkpoint": {"oneOf": [CHECKPOINT, {"type": "null"}]}},
            required=["checkpoint"],
            additional=False,
        )
    },
)
async def latest_checkpoint(request: web.Request) -> web.Response:
    latest = await CheckpointStore(request.app[DATABASE]).latest()
    return web.json_response({"checkpoint": None if latest is None else latest.as_json()})
