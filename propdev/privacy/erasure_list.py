"""The list of erased ids that travels from a surviving store to a restored one.

A backup taken before an erasure still holds the person; the ``erasures`` table of a store
that lived on (or the audit stream, which outlives both) says who was erased since. This
module reads that list in either of two forms and writes the first:

* the **erasure list** (``privacy erasures export``): one JSON object ::

      {"kind": "propdev.erasures", "format": 1, "cluster_id": "…", "exported_at": 1.8e9,
       "erasures": [{"user_id": "…", "erased_at": 1.8e9, "actor": "operator:…"}, …]}

* the **audit stream** (``docs/audit.md``, *The audit stream*): JSON lines as the nodes log
  them (``{"event": "audit_entry", "action": "resident.erase", "subject": …, "at": …}``), or
  as Loki's ``logcli query --output=jsonl`` wraps them (``{"labels": …, "line": "<that
  JSON>"}``). Every ``resident.erase`` entry granted is an erasure of its ``subject``; other
  entries and other log lines are passed over.

Anything else -- not JSON, an entry without its id, an unknown format, an empty file, lines
of which none is an audit entry -- is ``ErasureListError``, raised before anything is changed.
An id listed twice is one erasure, at its earliest time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from propdev.privacy.errors import ErasureListError

KIND = "propdev.erasures"
FORMAT = 1
ERASE_ACTION = "resident.erase"
STREAM_EVENT = "audit_entry"
MAX_ID = 200


@dataclass(frozen=True, slots=True)
class Erasure:
    """An erasure made elsewhere: whose, when, by whom (the original operator)."""

    user_id: str
    erased_at: float
    actor: str

    def as_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "erased_at": self.erased_at, "actor": self.actor}


@dataclass(frozen=True, slots=True)
class ErasureList:
    erasures: tuple[Erasure, ...]  # one per id, oldest first
    cluster_id: str | None  # the store it was exported from (None: the audit stream)
    source: str  # "erasure_list" or "audit_stream"


def document(erasures: list[Erasure], *, cluster_id: str, exported_at: float) -> dict[str, Any]:
    """The erasure list's JSON document (what ``parse`` reads back)."""
    return {
        "kind": KIND,
        "format": FORMAT,
        "cluster_id": cluster_id,
        "exported_at": exported_at,
        "erasures": [e.as_dict() for e in erasures],
    }


def _erasure(user_id: object, at: object, actor: object, where: str) -> Erasure:
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > MAX_ID:
        raise ErasureListError(f"{where}: no valid user id ({user_id!r})")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise ErasureListError(f"{where}: no valid time ({at!r})")
    if not isinstance(actor, str) or not actor:
        raise ErasureListError(f"{where}: no valid actor ({actor!r})")
    return Erasure(user_id, float(at), actor)


def _merged(found: list[Erasure]) -> tuple[Erasure, ...]:
    first: dict[str, Erasure] = {}
    for erasure in found:
        held = first.get(erasure.user_id)
        if held is None or erasure.erased_at < held.erased_at:
            first[erasure.user_id] = erasure
    return tuple(sorted(first.values(), key=lambda e: (e.erased_at, e.user_id)))


def _from_document(doc: dict[str, Any]) -> ErasureList:
    if doc.get("format") != FORMAT:
        raise ErasureListError(
            f"erasure list format {doc.get('format')!r} is not one this propdev reads ({FORMAT})"
        )
    items = doc.get("erasures")
    if not isinstance(items, list):
        raise ErasureListError('the erasure list has no "erasures" array')
    cluster = doc.get("cluster_id")
    if cluster is not None and not isinstance(cluster, str):
        raise ErasureListError(f"the erasure list's cluster_id is not a string ({cluster!r})")
    found = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ErasureListError(f"erasures[{n}]: not an object")
        found.append(
            _erasure(
                item.get("user_id"), item.get("erased_at"), item.get("actor"), f"erasures[{n}]"
            )
        )
    return ErasureList(_merged(found), cluster, "erasure_list")


def _from_lines(text: str) -> ErasureList:
    found: list[Erasure] = []
    entries = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"line {number}"
        try:
            line = json.loads(raw)
            if isinstance(line, dict) and "event" not in line and isinstance(line.get("line"), str):
                line = json.loads(line["line"])  # logcli --output=jsonl
        except ValueError:
            raise ErasureListError(f"{where}: not JSON") from None
        if not isinstance(line, dict):
            raise ErasureListError(f"{where}: not a JSON object")
        if line.get("event") != STREAM_EVENT:
            continue  # another log line of the node
        entries += 1
        if line.get("action") == ERASE_ACTION and line.get("decision") == "granted":
            found.append(_erasure(line.get("subject"), line.get("at"), line.get("actor"), where))
    if not entries:
        raise ErasureListError(
            "neither an erasure list nor the audit stream: no line is an audit_entry"
        )
    return ErasureList(_merged(found), None, "audit_stream")


def parse(text: str) -> ErasureList:
    """Read an erasure list or audit stream lines; ``ErasureListError`` if it is neither."""
    if not text.strip():
        raise ErasureListError("the file is empty")
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None  # JSON lines, or nothing we read
    if isinstance(whole, dict) and whole.get("kind") == KIND:
        return _from_document(whole)
    return _from_lines(text)
