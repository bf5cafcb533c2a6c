"""The OpenAPI document covers every route of the router and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from propdev.config import Settings
from propdev.http.app import make_app
from propdev.http.openapi import doc
from propdev.http.openapi_document import build_document, route_docs, undocumented
from propdev.http.permissions import Permission, requires
from propdev.node import Node


@pytest.fixture
def app(tmp_path: Path) -> web.Application:
    return make_app(Node(Settings.from_env({"PROPDEV_DATA_DIR": str(tmp_path)})))


@pytest.fixture
def document(app: web.Application) -> dict[str, Any]:
    return build_document(app, server_url="https://127.0.0.1:8443")


def test_every_route_of_the_router_is_documented(app: web.Application) -> None:
    assert undocumented(app) == []
    documented = {(r.method.lower(), r.path) for r in route_docs(app)}
    doc_ops = {
        (method, path) for path, item in build_document(app)["paths"].items() for method in item
    }
    assert documented == doc_ops


def test_a_route_without_documentation_is_reported(app: web.Application) -> None:
    extra = web.Application()
    for route in app.router.routes():
        if route.method != "HEAD":
            extra.router.add_route(route.method, route.resource.canonical, route.handler)  # type: ignore[union-attr]

    @requires(Permission.OPERATOR)
    async def hidden(request: web.Request) -> web.Response:
        return web.json_response({})

    extra.router.add_get("/admin/api/v1/hidden", hidden)
    assert undocumented(extra) == [("GET", "/admin/api/v1/hidden")]
    doc("Now documented")(hidden)
    assert undocumented(extra) == []


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_api_md_routes_are_all_there(document: dict[str, Any]) -> None:
    expected = {
        ("get", "/api/v1/me"),
        ("get", "/api/v1/access-points"),
        ("post", "/api/v1/access-points/{id}/open"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/ws"),
        ("post", "/api/v1/me/push-tokens"),
        ("get", "/api/v1/me/push-tokens"),
        ("delete", "/api/v1/me/push-tokens/{id}"),
        ("get", "/.well-known/openid-configuration"),
        ("get", "/oauth/authorize"),
        ("post", "/oauth/authorize"),
        ("post", "/oauth/token"),
        ("post", "/oauth/revoke"),
        ("get", "/oauth/userinfo"),
        ("get", "/oauth/jwks"),
        ("get", "/admin/api/v1/actors"),
        ("post", "/admin/api/v1/actors/{actor_id}/restart"),
        ("get", "/admin/api/v1/audit"),
        ("get", "/admin/api/v1/audit/checkpoint"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
        ("post", "/sim/v1/faults"),
    }
    present = {(m, p) for p, item in document["paths"].items() for m in item}
    assert expected - present == set()


def test_security_follows_the_declared_permission(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert paths["/healthz"]["get"]["security"] == []
    assert paths["/api/v1/me"]["get"]["security"] == [{"residentToken": []}, {"operatorToken": []}]
    assert paths["/api/v1/events"]["get"]["security"] == [{"residentToken": []}]
    assert paths["/admin/api/v1/actors"]["get"]["security"] == [{"operatorToken": []}]
    assert "otp" in document["components"]["securitySchemes"]["operatorToken"]["description"]
    open_ = paths["/api/v1/access-points/{id}/open"]["post"]
    assert open_["parameters"][0] == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    for status in ("401", "403", "404", "503", "504"):
        assert "application/problem+json" in open_["responses"][status]["content"]
    assert "Retry-After" in open_["responses"]["503"]["headers"]
    ws = paths["/api/v1/ws"]["get"]
    assert "101" in ws["responses"] and ws["x-websocket"] is True


def test_the_simulator_is_documented_only_when_mounted(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"PROPDEV_DATA_DIR": str(tmp_path), "PROPDEV_PARTNER_URL": "https://127.0.0.1:9"}
    )
    document = build_document(make_app(Node(settings)))
    assert not [p for p in document["paths"] if p.startswith("/sim/")]
    validate(document)


def test_json_request_bodies_say_what_the_json_reader_refuses(document: dict[str, Any]) -> None:
    json_ops = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    ours = [(p, m, op) for p, m, op in json_ops if not p.startswith("/sim/")]
    assert len(ours) >= 15
    for path, method, op in ours:
        assert "415" in op["responses"], (method, path)
        assert "nested arrays and objects" in op["requestBody"]["description"], (method, path)
    # The simulator's control API takes any media type: no 415 claimed there.
    assert all("415" not in op["responses"] for p, _, op in json_ops if p.startswith("/sim/"))
    # The CSV import declares its own 415, not the JSON reader's.
    csv = document["paths"]["/admin/api/v1/access-points/import"]["post"]
    assert "text/csv" in csv["requestBody"]["content"] and "description" not in csv["requestBody"]


def test_the_open_route_takes_no_body_but_an_empty_object(document: dict[str, Any]) -> None:
    body = document["paths"]["/api/v1/access-points/{id}/open"]["post"]["requestBody"]

    assert body["required"] is False
    assert body["content"]["application/json"]["schema"] == {"type": "object", "maxProperties": 0}


def test_a_meter_value_as_a_string_is_documented_as_ascii_digits(document: dict[str, Any]) -> None:
    reading = document["components"]["schemas"]["MeterReadingRequest"]
    value = reading["properties"]["value"]

    assert value["pattern"] == r"^[0-9]+(\.[0-9]+)?$" and value["maxLength"] == 32
    assert reading["additionalProperties"] is False


def test_documented_constraints_are_the_validators_own(document: dict[str, Any]) -> None:
    """The document is as strict as the server, so generated "valid" data is valid: the
    schedule's days and window count, and the control characters names refuse."""
    import re

    from propdev.access.schedule import DAYS, MAX_WINDOWS
    from propdev.management.errors import InvalidFieldError
    from propdev.management.fields import text

    schemas = document["components"]["schemas"]
    schedule = schemas["RightRequest"]["properties"]["schedule"]
    windows = schedule["properties"]["windows"]
    assert windows["maxItems"] == MAX_WINDOWS
    assert windows["items"]["properties"]["days"]["items"]["enum"] == list(DAYS)
    name = schemas["SiteRequest"]["properties"]["name"]
    for value in ("Riverside", "Дом 1", " a ", "\u0085x", "a\x07", "\x7f", "   ", "\t"):
        try:
            text(value, "name")
            accepted = True
        except InvalidFieldError:
            accepted = False
        assert bool(re.search(name["pattern"], value)) is accepted, repr(value)
