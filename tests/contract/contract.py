"""Checks an observed response against the served OpenAPI document: the status must be
documented for the operation, the media type must be the documented one, and a JSON body must
validate (JSON Schema 2020-12, ``$ref`` into the document's components)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema


def _template_regex(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{pattern}$")


@dataclass
class Contract:
    document: dict[str, Any]
    checked: list[tuple[str, str, int]] = field(default_factory=list)

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """The documented (template, operation) that ``method path`` hits; literal paths first."""
        candidates = sorted(self.document["paths"], key=lambda t: t.count("{"))
        for template in candidates:
            if _template_regex(template).match(path):
                item = self.document["paths"][template]
                if method.lower() in item:
                    return template, item[method.lower()]
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")

    def check(
        self, method: str, path: str, status: int, content_type: str | None, body: Any
    ) -> None:
        template, op = self.operation(method, path.split("?")[0])
        responses = op["responses"]
        documented = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        assert documented is not None, (
            f"{method} {template} answered {status}, documented: {sorted(responses)}"
        )
        content = documented.get("content")
        if not content:
            assert not body, f"{method} {template} {status}: a body where none is documented"
            self.checked.append((method, template, status))
            return
        media = (content_type or "").split(";")[0].strip()
        assert media in content or "*/*" in content, (
            f"{method} {template} {status}: {media!r}, documented {sorted(content)}"
        )
        schema = content.get(media, content.get("*/*", {})).get("schema")
        if schema is not None and media.endswith("json"):
            root = {**schema, "components": self.document["components"]}
            try:
                jsonschema.Draft202012Validator(root).validate(body)
            except jsonschema.ValidationError as exc:
                raise AssertionError(
                    f"{method} {template} {status}: body outside the schema: {exc.message}"
                ) from None
        self.checked.append((method, template, status))
