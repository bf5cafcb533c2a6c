"""The resident web app's page and files: served from the package, under a policy that allows
nothing inline and nothing from elsewhere, and calling only its own origin."""

from __future__ import annotations

import re
from importlib import resources

from propdev.http.keys import PUBLIC_URL
from propdev.http.routes import webapp
from tests.support.routes import ClientFactory, route_app

PUBLIC = "https://homes.example:8443"


def directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


async def test_the_page_comes_with_a_policy_that_allows_nothing_inline_or_foreign(
    aiohttp_client: ClientFactory,
) -> None:
    app = route_app(webapp.routes)
    app[PUBLIC_URL] = PUBLIC
    client = await aiohttp_client(app)
    resp = await client.get("/app/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    policy = resp.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    found = directives(policy)
    assert found["default-src"] == ["'none'"]
    assert found["script-src"] == ["'self'"]
    assert found["style-src"] == ["'self'"]
    assert found["connect-src"] == ["'self'", "wss://homes.example:8443"]
    assert found["frame-ancestors"] == ["'none'"]
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    page = await resp.text()
    assert '<meta name="viewport"' in page
    assert '<meta name="propdev-client-id" content="resident-web">' in page


async def test_the_page_names_only_its_own_files_and_each_is_served(
    aiohttp_client: ClientFactory,
) -> None:
    app = route_app(webapp.routes)
    app[PUBLIC_URL] = PUBLIC
    client = await aiohttp_client(app)
    page = await (await client.get("/app/")).text()
    assert "<style" not in page and " style=" not in page  # nothing the policy would block
    assert re.findall(r"<script(?![^>]*\ssrc=)", page) == []  # no inline script
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert sorted(assets) == ["/app/static/app.css", "/app/static/app.js", "data:,"]
    types = {"/app/static/app.js": "text/javascript", "/app/static/app.css": "text/css"}
    for path, content_type in types.items():
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.content_type == content_type
        assert (
            await resp.read()
            == (resources.files("propdev.webapp") / path.rsplit("/", 1)[1]).read_bytes()
        )


async def test_no_file_of_the_app_loads_anything_from_elsewhere() -> None:
    files = resources.files("propdev.webapp")
    for name in ("index.html", "app.js", "app.css"):
        text = (files / name).read_text("utf-8")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), name
        assert "@import" not in text and "eval(" not in text, name


async def test_other_names_under_static_are_not_found_and_app_redirects(
    aiohttp_client: ClientFactory,
) -> None:
    app = route_app(webapp.routes)
    app[PUBLIC_URL] = PUBLIC
    client = await aiohttp_client(app)
    for name in ("index.html", "__init__.py", "..%2F__init__.py", "console.js"):
        resp = await client.get(f"/app/static/{name}")
        assert resp.status == 404, name
    resp = await client.get("/app", allow_redirects=False)
    assert resp.status == 301
    assert resp.headers["Location"] == "/app/"


def test_a_plain_http_public_url_gets_the_ws_scheme() -> None:
    policy = directives(webapp.web_app_csp("http://127.0.0.1:8080"))
    assert policy["connect-src"] == ["'self'", "ws://127.0.0.1:8080"]
