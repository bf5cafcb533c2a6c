"""The personal-data routes answer inside the document: export 200 (its schema), 403 to a
resident, 404 unknown; erase 204, then 409 again and the export 404."""

from __future__ import annotations

import pytest

from tests.contract.contract import Contract
from tests.contract.test_observed_responses import Observer
from tests.e2e.conftest import RunningNode

pytestmark = pytest.mark.slow


async def test_export_and_erase_answer_inside_the_document(node: RunningNode) -> None:
    async with node.http.get(f"{node.url}/openapi.json") as resp:
        contract = Contract(await resp.json())
    o = Observer(node, contract)
    anna = await node.token_for("anna")
    operator = await node.token_for("operator")
    path = f"/admin/api/v1/residents/{node.resident('anna')['id']}"

    exported = await o.call("GET", f"{path}/export", token=operator, expect=200)
    assert exported["account"]["username"] == "anna"
    await o.call("GET", f"{path}/export", token=anna, expect=403)
    await o.call("POST", f"{path}/erase", token=anna, expect=403)
    await o.call("GET", "/admin/api/v1/residents/nobody/export", token=operator, expect=404)
    await o.call("POST", "/admin/api/v1/residents/nobody/erase", token=operator, expect=404)
    await o.call("POST", f"{path}/erase", token=operator, expect=204)
    await o.call("POST", f"{path}/erase", token=operator, expect=409)
    await o.call("GET", f"{path}/export", token=operator, expect=404)
