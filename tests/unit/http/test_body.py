"""The one JSON body reader: bytes → value (``parse_json``) and request → value (``json_body``)."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from propdev.http.body import MAX_DEPTH, InvalidJsonError, check_depth, json_body, parse_json
from propdev.http.errors import BadRequestError
from propdev.http.middlewares import request_context_middleware

Client = TestClient[web.Request, web.Application]


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


def test_a_plain_document_parses_as_json_does() -> None:
    raw = '{"a": [1, 2.5, "x", true, null, {"b": "é"}], "c": -3}'.encode()

    assert parse_json(raw) == {"a": [1, 2.5, "x", True, None, {"b": "é"}], "c": -3}


def test_floats_can_be_parsed_as_decimals_so_nothing_is_rounded() -> None:
    assert parse_json(b'{"v": 231.405}', parse_float=Decimal) == {"v": Decimal("231.405")}


def test_nesting_up_to_the_limit_is_taken_and_one_more_level_is_refused() -> None:
    assert parse_json(nested(MAX_DEPTH)) is not None
    with pytest.raises(InvalidJsonError, match="nested too deeply"):
        parse_json(nested(MAX_DEPTH + 1))
    objects = ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)).encode()
    with pytest.raises(InvalidJsonError, match="nested too deeply"):
        parse_json(objects)


@pytest.mark.parametrize("depth", [1000, sys.getrecursionlimit() * 10])
def test_a_thousand_brackets_are_refused_without_recursion(depth: int) -> None:
    with pytest.raises(InvalidJsonError, match="nested too deeply") as caught:
        parse_json(b"[" * depth)

    assert caught.value.status == 400 and caught.value.kind == "bad-request"
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # no RecursionError


def test_brackets_inside_strings_do_not_count_towards_the_depth() -> None:
    text = '["' + "[" * 100 + '\\"' + "{" * 100 + '"]'

    assert parse_json(text.encode()) == ["[" * 100 + '"' + "{" * 100]
    check_depth(text, limit=1)


def test_mismatched_brackets_are_a_syntax_error_not_a_depth_error() -> None:
    with pytest.raises(InvalidJsonError, match="not valid JSON: Expecting value"):
        parse_json(b"[}" * 100)


def test_a_key_twice_in_one_object_is_refused_and_named() -> None:
    with pytest.raises(InvalidJsonError, match='the key "plate" appears twice') as caught:
        parse_json(b'{"x": {"plate": 1, "plate": 2}}')

    assert caught.value.extra == {"key": "plate"}
    assert parse_json(b'[{"plate": 1}, {"plate": 2}]') == [{"plate": 1}, {"plate": 2}]


def test_a_long_duplicate_key_is_shortened_in_the_problem() -> None:
    key = "k" * 10_000
    with pytest.raises(InvalidJsonError) as caught:
        parse_json(f'{{"{key}": 1, "{key}": 2}}'.encode())

    assert len(caught.value.detail) < 200 and caught.value.extra["key"].endswith("…")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"NaN", "NaN is not a JSON number"),
        (b"[Infinity]", "Infinity is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b"[1e400]", "too large a number"),
        (b'["\xff"]', "not valid UTF-8"),
        (b'"\xed\xa0\x80"', "not valid UTF-8"),  # an encoded surrogate
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2", "not valid JSON"),
        (b"1" * 5000, "not valid JSON"),  # past int()'s digit limit
        (b'["a\x01"]', "not valid JSON"),  # a raw control character in a string
    ],
)
def test_what_json_loads_lets_through_or_raises_oddly_is_a_400(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidJsonError, match=words) as caught:
        parse_json(raw)

    assert isinstance(caught.value, BadRequestError) and isinstance(caught.value, ValueError)


# -- json_body: the request's side ---------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client: Any) -> Client:
    async def required(request: web.Request) -> web.Response:
        return web.json_response({"got": await json_body(request)})

    async def optional(request: web.Request) -> web.Response:
        return web.json_response({"got": await json_body(request, required=False, absent="-")})

    app = web.Application(middlewares=[request_context_middleware(node_id="test")])
    app.router.add_post("/required", required)
    app.router.add_post("/optional", optional)
    return await aiohttp_client(app)  # type: ignore[no-any-return]


async def post(
    client: Client, path: str, body: bytes, content_type: str | None
) -> tuple[int, str, Any]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = await client.post(path, data=body, headers=headers, skip_auto_headers=["Content-Type"])
    return resp.status, resp.content_type, await resp.json(content_type=None)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        "application/merge-patch+json",
        "application/vnd.propdev.v1+json; charset=utf-8",
    ],
)
async def test_json_media_types_in_utf8_are_read(client: Client, content_type: str) -> None:
    assert await post(client, "/required", b'{"a": 1}', content_type) == (
        200,
        "application/json",
        {"got": {"a": 1}},
    )


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "application/jsonp",
        "application/json+xml",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
    ],
)
async def test_other_media_types_are_a_415_problem(
    client: Client, content_type: str | None
) -> None:
    status, media, problem = await post(client, "/required", b'{"a": 1}', content_type)

    assert (status, media) == (415, "application/problem+json")
    assert problem["type"].endswith("/unsupported-media-type") and problem["status"] == 415
    assert problem["accepted"] == ["application/json", "application/*+json"]


async def test_an_empty_body_is_a_400_when_required_and_absent_otherwise(client: Client) -> None:
    status, _, problem = await post(client, "/required", b"", None)
    assert (status, problem["detail"]) == (400, "A JSON body is required.")

    assert await post(client, "/optional", b"", None) == (200, "application/json", {"got": "-"})
    assert (await post(client, "/optional", b" \r\n", "text/plain"))[2] == {"got": "-"}
    assert (await post(client, "/optional", b"null", "application/json"))[2] == {"got": None}


async def test_a_deep_body_is_a_400_problem_not_a_500(client: Client) -> None:
    status, media, problem = await post(client, "/required", b"[" * 1000, "application/json")

    assert (status, media) == (400, "application/problem+json")
    assert problem["type"].endswith("/bad-request") and "nested too deeply" in problem["detail"]
