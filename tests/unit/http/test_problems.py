"""Domain errors become problems in one place: the table of ``propdev.http.problems``, by MRO."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from propdev.access import InvalidPlateError
from propdev.http.errors import ForbiddenError
from propdev.http.integration_log import integration_log_middleware
from propdev.http.middlewares import request_context_middleware
from propdev.http.problems import PROBLEMS, problem_for
from propdev.management import (
    ConflictError,
    InvalidFieldError,
    ManagementError,
    NoGatewayError,
    UnknownObjectError,
)
from propdev.partners import (
    CircuitOpenError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
)
from propdev.privacy import AlreadyErasedError, UnknownPersonError
from propdev.storage import StoreUnavailableError

ClientFactory = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.mark.parametrize(
    ("error", "status", "kind", "detail", "extra"),
    [
        (InvalidFieldError("name", "expected a string"), 422, "invalid-field",
         "name: expected a string", {"field": "name"}),
        (InvalidPlateError("plate", "not a plate"), 422, "invalid-field",
         "plate: not a plate", {"field": "plate"}),
        (UnknownObjectError("site", "s1"), 404, "not-found", "No site 's1'.", {}),
        (ConflictError("site 's1' exists", "id"), 409, "conflict", "site 's1' exists",
         {"field": "id"}),
        (ConflictError("the estate changed"), 409, "conflict", "the estate changed", {}),
        (NoGatewayError("no gateway to partner 'p'"), 503, "unavailable",
         "no gateway to partner 'p'", {}),
        (CircuitOpenError("p", 3.0), 503, "unavailable",
         "The partner is not called now: circuit of partner 'p' is open; retry in 3.0s", {}),
        (PartnerTimeoutError("slow"), 504, "partner-timeout",
         "The partner did not answer in time.", {}),
        (PartnerUnavailableError("down"), 502, "partner-unavailable",
         "The partner gave no usable answer: down", {}),
        (PartnerRefusedError("device_offline"), 502, "partner-unavailable",
         "The partner gave no usable answer: device_offline", {}),
        (StoreUnavailableError("refused"), 503, "store-unavailable",
         "The store cannot be reached right now; retry shortly.", {}),
        (UnknownPersonError("u1"), 404, "not-found", "No resident 'u1'.", {}),
        (AlreadyErasedError("u1", 1.0), 409, "conflict",
         "Resident 'u1' was erased already; nothing was changed.", {}),
    ],
)  # fmt: skip
def test_each_domain_error_is_answered_by_the_nearest_class_of_its_mro(
    error: Exception, status: int, kind: str, detail: str, extra: dict[str, str]
) -> None:
    problem = problem_for(error)
    assert problem is not None
    body = problem.body()
    assert (body["status"], body["type"], body["detail"]) == (
        status,
        f"https://propdev.example/problems/{kind}",
        detail,
    )
    assert {
        k: v for k, v in body.items() if k not in {"type", "title", "status", "detail"}
    } == extra


def test_an_error_in_no_row_of_the_table_is_none_and_a_problem_is_itself() -> None:
    assert problem_for(ManagementError("a new kind of error nobody mapped")) is None
    assert problem_for(ValueError("a bug")) is None
    forbidden = ForbiddenError("no")
    assert problem_for(forbidden) is forbidden
    assert InvalidPlateError not in PROBLEMS  # found through its base class


def test_retry_after_comes_with_the_unavailable_answers() -> None:
    for error in (NoGatewayError("x"), CircuitOpenError("p", 1.0), StoreUnavailableError("x")):
        problem = problem_for(error)
        assert problem is not None and int(problem.headers["Retry-After"]) >= 1


async def test_the_middleware_answers_a_domain_error_with_its_problem_and_logs_no_failure(
    aiohttp_client: ClientFactory,
) -> None:
    async def missing(request: web.Request) -> web.Response:
        raise UnknownObjectError("building", "b9")

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(
        middlewares=[
            request_context_middleware(node_id="n1"),
            integration_log_middleware(),
        ]
    )
    app.router.add_get("/admin/api/v1/buildings/b9", missing)
    app.router.add_get("/partner/v1/broken", broken)
    client = await aiohttp_client(app)
    with capture_logs() as logs:
        resp = await client.get("/admin/api/v1/buildings/b9")
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["detail"] == "No building 'b9'."
        assert not [e for e in logs if e["event"] == "request_failed"]
        resp = await client.get("/partner/v1/broken")
        assert resp.status == 500
    assert [e["event"] for e in logs if e["event"] == "request_failed"] == ["request_failed"]
    recorded = [e["status"] for e in logs if e["event"] == "integration_request"]
    assert recorded == [404, 500]  # the integration log sees the same status as the caller
