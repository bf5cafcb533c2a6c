"""Reading the fields of a request body: each failure names its field."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from propdev.management.errors import InvalidFieldError

MAX_ID = 64
MAX_NAME = 200
KINDS = ("door", "barrier")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{4,24}$")
_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def body_object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise InvalidFieldError("body", "expected a JSON object")
    return body


def only(body: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Refuse fields the request does not know (a typo must not pass silently)."""
    for name in body:
        if name not in allowed:
            raise InvalidFieldError(str(name), "unknown field")


def ident(value: object, field: str) -> str:
    """An id we choose for the estate: 1 to 64 letters, digits, ``.``, ``_``, ``:``, ``-``."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidFieldError(
            field, f"expected an id of 1 to {MAX_ID} letters, digits, '.', '_', ':' or '-'"
        )
    return value


def text(value: object, field: str, *, max_length: int = MAX_NAME) -> str:
    """A name or label: trimmed, 1 to ``max_length`` characters, no control characters."""
    if not isinstance(value, str):
        raise InvalidFieldError(field, "expected a string")
    value = value.strip()
    if not value or len(value) > max_length or _CONTROL.search(value):
        raise InvalidFieldError(
            field, f"expected 1 to {max_length} characters without control characters"
        )
    return value


def kind(value: object, field: str = "kind") -> str:
    if value not in KINDS:
        raise InvalidFieldError(field, "expected 'door' or 'barrier'")
    return str(value)


def timezone(value: object, field: str = "timezone") -> str:
    if isinstance(value, str) and _ZONE.match(value):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return value
    raise InvalidFieldError(field, "expected an IANA time zone such as Europe/Moscow")


def username(value: object, field: str = "username") -> str:
    if isinstance(value, str) and _USERNAME.match(value.strip().lower()):
        return value.strip().lower()
    raise InvalidFieldError(field, "expected 3 to 64 lower-case letters, digits, '.', '_' or '-'")


def phone(value: object, field: str = "phone") -> str:
    if isinstance(value, str) and _PHONE.match(value.strip()):
        return value.strip()
    raise InvalidFieldError(field, "expected a phone number such as +79990000001")


def flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidFieldError(field, "expected true or false")
    return value
