"""Hostile input at the authorization endpoint: a 400 the caller can read, never a 500, never
a redirect to a ``redirect_uri`` that was not checked (found by Schemathesis and hand probes)."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.unit.security.conftest import REDIRECT_URI, pkce_pair
from tests.unit.security.helpers import authorize_params

HOSTILE = ['"', "\\", "\x01", "\x7f", "é", "\u202e"]


def _no_errors_logged(logs: list[dict[str, Any]]) -> None:
    assert [e for e in logs if e.get("log_level") in ("error", "critical")] == []


@pytest.mark.parametrize("char", HOSTILE)
@pytest.mark.parametrize("field", ["redirect_uri", "response_type"])
async def test_a_hostile_character_in_the_request_is_a_400_page_not_a_500(
    client: Any, field: str, char: str
) -> None:
    _, challenge = pkce_pair()
    value = {"redirect_uri": REDIRECT_URI + char, "response_type": "code" + char}[field]
    params = authorize_params(challenge, **{field: value})
    with capture_logs() as logs:
        response = await client.get("/oauth/authorize", params=params, allow_redirects=False)
        body = await response.text()
    assert response.status == 400, body
    assert "Location" not in response.headers
    assert response.content_type == "text/html"
    assert "Cannot sign in" in body
    _no_errors_logged(logs)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary="',
        "multipart/form-data; boundary=" + "x" * 100,
        "multipart/form-data; boundary=abc",
    ],
)
async def test_a_malformed_multipart_login_post_is_a_400_problem(
    client: Any, content_type: str
) -> None:
    with capture_logs() as logs:
        response = await client.post(
            "/oauth/authorize",
            data=b'--other\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--other--\r\n',
            headers={"Content-Type": content_type},
            allow_redirects=False,
        )
        body = await response.json(content_type=None)
    assert response.status == 400, body
    assert response.content_type == "application/problem+json"
    assert body["status"] == 400 and body["detail"]
    assert "Location" not in response.headers
    _no_errors_logged(logs)


async def test_a_hostile_character_in_a_submitted_form_is_a_400_not_a_500(client: Any) -> None:
    _, challenge = pkce_pair()
    fields = authorize_params(challenge, redirect_uri=REDIRECT_URI + '"')
    with capture_logs() as logs:
        response = await client.post("/oauth/authorize", data=fields, allow_redirects=False)
    assert response.status == 400
    assert "Location" not in response.headers
    _no_errors_logged(logs)
