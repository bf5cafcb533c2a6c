"""Reading JSON request bodies: one strict reader for every route that takes JSON.

Two steps, so a route that needs the raw bytes first (the partner events route checks a
signature over them) parses them with the same rules:

- ``parse_json(raw)``: bytes → value. UTF-8 only (no BOM); at most ``MAX_DEPTH`` nested arrays
  and objects, checked by a scan of the brackets outside strings *before* parsing, so a body of
  a thousand ``[`` never reaches the recursive parser; a key twice in one object, ``NaN``,
  ``Infinity`` and numbers too large for a float are refused. Every refusal is an
  ``InvalidJsonError`` (a 400 ``bad-request`` problem, and a ``ValueError``).
- ``json_body(request)``: request → value. The body, already read and capped by the body limit
  middleware (413), must be declared ``application/json`` or ``application/*+json`` with no
  charset or ``utf-8`` (else 415 ``unsupported-media-type``), then goes through ``parse_json``.
  An empty body (or only whitespace) is a 400 when ``required``, else ``absent`` (``None``),
  whatever its ``Content-Type``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from propdev.http.errors import BadRequestError, ProblemError

MAX_DEPTH = 32
MAX_KEY_SHOWN = 64  # characters of a duplicate key repeated in the problem

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_JSON_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.-]+\+)?json")
_WHITESPACE = b" \t\r\n"


class InvalidJsonError(BadRequestError, ValueError):
    """Raised when a body is not JSON we accept (syntax, encoding, depth, duplicate key...)."""


class UnsupportedMediaTypeError(ProblemError):
    """Raised when a body is declared in a media type the route does not take."""

    status, kind, title = 415, "unsupported-media-type", "Unsupported media type"


def parse_json(raw: bytes, *, parse_float: Callable[[str], Any] | None = None) -> Any:
    """The JSON value in ``raw`` (see the module docstring); ``parse_float`` as in ``json``
    (e.g. ``Decimal``), finite floats by default."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJsonError("The body is not valid UTF-8.") from None
    if text.startswith("\ufeff"):
        raise InvalidJsonError("The body is not valid JSON: it starts with a byte order mark.")
    check_depth(text)
    try:
        return json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_constant,
            parse_float=parse_float or _finite_float,
        )
    except InvalidJsonError:
        raise
    except RecursionError:  # not reached past check_depth; a parser is recursive all the same
        raise _too_deep(MAX_DEPTH) from None
    except ValueError as exc:  # JSONDecodeError, and int() past its digit limit
        raise InvalidJsonError(f"The body is not valid JSON: {_reason(exc)}.") from None


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Raise ``InvalidJsonError`` when arrays and objects in ``text`` nest deeper than
    ``limit``, without recursion: each pass removes the innermost empty pairs of brackets
    (strings removed first), so ``limit`` passes empty a well-nested text at most that deep."""
    brackets = left = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):
        if not left:
            return
        left = left.replace("[]", "").replace("{}", "")
    if not left:
        return
    depth = 0  # too deep, or not matched (then the parser says where)
    for char in brackets:
        depth += 1 if char in "[{" else -1
        if depth > limit:
            raise _too_deep(limit)


async def json_body(
    request: web.Request,
    *,
    required: bool = True,
    absent: Any = None,
    parse_float: Callable[[str], Any] | None = None,
) -> Any:
    """The request's JSON body (see the module docstring); ``absent`` when there is none and
    it is not ``required`` (``None`` by default: pass another value to tell ``null`` apart)."""
    raw = await request.read()  # read and capped by the body limit middleware already
    if not raw.strip(_WHITESPACE):
        if required:
            raise BadRequestError("A JSON body is required.")
        return absent
    check_media_type(request)
    return parse_json(raw, parse_float=parse_float)


def check_media_type(request: web.Request) -> None:
    """415 unless the request declares a JSON media type in UTF-8."""
    declared = request.headers.get("Content-Type")
    charset = (request.charset or "utf-8").lower()
    if declared is None or not _JSON_TYPE.fullmatch(request.content_type) or charset != "utf-8":
        raise UnsupportedMediaTypeError(
            "Send the body as application/json (or application/*+json) in UTF-8.",
            extra={"accepted": ["application/json", "application/*+json"]},
        )


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            shown = key if len(key) <= MAX_KEY_SHOWN else key[:MAX_KEY_SHOWN] + "…"
            raise InvalidJsonError(
                f"The body is not valid JSON: the key {json.dumps(shown)} appears twice in "
                "one object.",
                extra={"key": shown},
            )
        found[key] = value
    return found


def _constant(name: str) -> Any:
    raise InvalidJsonError(f"The body is not valid JSON: {name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJsonError(f"The body is not valid JSON: {text[:32]} is too large a number.")
    return value


def _too_deep(limit: int) -> InvalidJsonError:
    return InvalidJsonError(
        f"The body is nested too deeply: at most {limit} levels of arrays and objects."
    )


def _reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    return str(exc).split(":")[0]
