"""Bulk import of access points from CSV.

The file has a header naming the columns ``access_point_id,name,kind,building_id,partner,
device_id`` (in any order; other columns are refused). Each line is checked alone, against the
estate as the earlier lines left it: ``added``, ``changed`` (with the fields), ``unchanged`` or
``rejected`` with the reason; a bad line does not stop the others. Unless it is a dry run, the
accepted lines are written in one transaction, each with its audit entry
(``access_point.import``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from propdev.management.changes import details, record
from propdev.management.errors import ConflictError, InvalidFieldError, ManagementError
from propdev.management.points import Catalogue, Point, PointSpec, changed_fields, write
from propdev.storage import Database

COLUMNS = ("access_point_id", "name", "kind", "building_id", "partner", "device_id")
MAX_LINES = 2000
MAX_BYTES = 1024 * 1024
MAX_REASON = 300


@dataclass(slots=True)
class ImportReport:
    dry_run: bool
    lines: list[dict[str, Any]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for line in self.lines if line["outcome"] == outcome)

    def to_json(self) -> dict[str, Any]:
        outcomes = ("added", "changed", "unchanged", "rejected")
        return {
            "dry_run": self.dry_run,
            "summary": {o: self.count(o) for o in outcomes},
            "lines": self.lines,
        }


def decode(raw: bytes) -> str:
    if len(raw) > MAX_BYTES:
        raise InvalidFieldError("body", f"at most {MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidFieldError("body", "expected UTF-8 text") from None


def _header(row: list[str]) -> dict[str, int]:
    names = [c.strip().lower() for c in row]
    unknown = [n for n in names if n not in COLUMNS]
    missing = [c for c in COLUMNS if c not in names]
    if unknown or missing or len(set(names)) != len(names):
        raise InvalidFieldError(
            "header", f"expected the columns {','.join(COLUMNS)} (any order), once each"
        )
    return {n: i for i, n in enumerate(names)}


def _reason(exc: ManagementError) -> str:
    if isinstance(exc, InvalidFieldError):
        name = "access_point_id" if exc.field == "id" else exc.field
        return f"{name}: {exc.detail}"[:MAX_REASON]
    if isinstance(exc, ConflictError):
        return f"conflict: {exc.detail}"[:MAX_REASON]
    return str(exc)[:MAX_REASON]


class CsvImport:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def run(self, actor: str, text: str, *, dry_run: bool) -> ImportReport:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            raise InvalidFieldError("body", "empty CSV: expected a header line")
        columns = _header(rows[0])
        if len(rows) - 1 > MAX_LINES:
            raise InvalidFieldError("body", f"at most {MAX_LINES} lines")
        report = ImportReport(dry_run)
        try:
            async with self.db.transaction() as conn:
                catalogue = await Catalogue.load(conn)
                seen: set[str] = set()
                accepted: list[tuple[Point, list[str]]] = []
                for number, row in enumerate(rows[1:], start=2):
                    if not any(cell.strip() for cell in row):
                        continue
                    line = self._line(catalogue, seen, number, row, columns, accepted)
                    report.lines.append(line)
                if not dry_run:
                    for point, changed in accepted:
                        await write(conn, point)
                        await record(
                            conn,
                            self.db.dialect,
                            actor=actor,
                            action="access_point.import",
                            access_point_id=point.spec.id,
                            reason=details(fields=",".join(changed)),
                        )
                    if accepted:
                        await record(
                            conn,
                            self.db.dialect,
                            actor=actor,
                            action="access_points.import",
                            reason=details(
                                added=report.count("added"),
                                changed=report.count("changed"),
                                unchanged=report.count("unchanged"),
                                rejected=report.count("rejected"),
                            ),
                        )
        except sa.exc.IntegrityError:
            raise ConflictError("the estate changed during the import; run it again") from None
        return report

    @staticmethod
    def _line(
        catalogue: Catalogue,
        seen: set[str],
        number: int,
        row: list[str],
        columns: dict[str, int],
        accepted: list[tuple[Point, list[str]]],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"line": number}
        if len(row) != len(COLUMNS):
            return {
                **out,
                "outcome": "rejected",
                "reason": f"expected {len(COLUMNS)} fields, found {len(row)}",
            }
        values = {name: row[i].strip() for name, i in columns.items()}
        out["access_point_id"] = values["access_point_id"][:64]
        try:
            spec = PointSpec.parse({**values, "id": values["access_point_id"]})
            if spec.id in seen:
                raise ConflictError("the same access point appears on an earlier line")
            catalogue.check(spec)
        except ManagementError as exc:
            return {**out, "outcome": "rejected", "reason": _reason(exc)}
        seen.add(spec.id)
        old = catalogue.points.get(spec.id)
        point = catalogue.put(spec)
        changed = changed_fields(old, point)
        if not changed:
            return {**out, "outcome": "unchanged"}
        accepted.append((point, changed))
        if old is None:
            return {**out, "outcome": "added"}
        return {**out, "outcome": "changed", "fields": changed}
