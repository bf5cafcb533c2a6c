"""The acme adapter over its simulator, in-process and over HTTPS (``run_partner_sim``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from propdev.config import Settings
from propdev.devkit import AcmeSimulator, run_partner_sim
from propdev.partners import (
    AcmeAdapter,
    AcmeHttpClient,
    AcmeInProcessClient,
    Confirmation,
    PartnerRefusedError,
    PartnerUnavailableError,
    vendor_api_key,
)
from propdev.pki import client_context

LOCK = "LK-7F3A-0001"


def confirming(adapter: AcmeAdapter, seen: list[dict[str, Any]]) -> Any:
    """The node's part: a command_result callback resolves the adapter's ticket."""

    async def callback(event: dict[str, Any]) -> None:
        seen.append(event)
        if event["type"] == "command_result":
            ok = event["result"] == "done"
            adapter.confirm(Confirmation(event["ticket"], ok, event.get("error")))

    return callback


@pytest.fixture(params=["inprocess", "https"])
async def acme(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[AcmeAdapter, AcmeSimulator, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    if request.param == "inprocess":
        sim = AcmeSimulator()
        adapter = AcmeAdapter("acme", AcmeInProcessClient(sim))
        sim.callback = confirming(adapter, seen)
        yield adapter, sim, seen
        await adapter.close()
        await sim.close()
        return
    server = await run_partner_sim(settings, port=0)
    assert server.acme is not None
    client = AcmeHttpClient(
        server.url,
        ssl_context=client_context(settings.pki_dir),
        api_key=vendor_api_key(settings.data_dir, "acme"),
        timeout=5,
    )
    adapter = AcmeAdapter("acme", client)
    server.acme.callback = confirming(adapter, seen)
    yield adapter, server.acme, seen
    await adapter.close()
    await server.close()


async def test_an_open_completes_when_its_result_is_called_back(
    acme: tuple[AcmeAdapter, AcmeSimulator, list[dict[str, Any]]],
) -> None:
    adapter, sim, seen = acme
    result = await adapter.open(
        LOCK, request_id="req-1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    )
    assert result.vendor_command_id.startswith("tk_") and result.accepted_at is not None
    assert [e["type"] for e in seen] == ["command_result"]
    assert seen[0]["ticket"] == result.vendor_command_id and seen[0]["reference"] == "req-1"
    assert [(c["device_id"], c["request_id"]) for c in sim.core.commands()] == [(LOCK, "req-1")]
    assert sim.core.commands()[0]["traceparent"].startswith("00-")
    again = await adapter.open(LOCK, request_id="req-1")  # same reference: same ticket
    assert again.vendor_command_id == result.vendor_command_id
    assert len(sim.core.commands()) == 1


@pytest.mark.parametrize(
    ("state", "reason"), [("jammed", "device_jammed"), ("offline", "device_offline")]
)
async def test_a_failed_result_is_a_refusal_with_our_reason(
    acme: tuple[AcmeAdapter, AcmeSimulator, list[dict[str, Any]]], state: str, reason: str
) -> None:
    adapter, sim, seen = acme
    if state == "offline":
        sim.core.update_device(LOCK, online=False)
    else:
        sim.core.update_device(LOCK, state=state)
    with pytest.raises(PartnerRefusedError) as caught:
        await adapter.open(LOCK, request_id="req-2")
    assert caught.value.reason == reason
    results = [e for e in seen if e["type"] == "command_result"]
    assert [(e["result"], e["error"]) for e in results] == [
        ("failed", {"device_jammed": "E_JAMMED", "device_offline": "E_LOCK_OFFLINE"}[reason])
    ]


async def test_an_unknown_lock_is_refused_at_once_and_errors_are_failures(
    acme: tuple[AcmeAdapter, AcmeSimulator, list[dict[str, Any]]],
) -> None:
    adapter, sim, _ = acme
    with pytest.raises(PartnerRefusedError) as caught:
        await adapter.open("LK-NOPE", request_id="req-3")
    assert caught.value.reason == "unknown_device"
    sim.core.set_faults("error")
    with pytest.raises(PartnerUnavailableError):
        await adapter.open(LOCK, request_id="req-4")
    assert sim.core.commands() == []


async def test_the_lock_list_is_translated_to_our_device_kinds(
    acme: tuple[AcmeAdapter, AcmeSimulator, list[dict[str, Any]]],
) -> None:
    adapter, _, _ = acme
    kinds = {d.device_id: d.kind for d in await adapter.list_devices()}
    assert kinds["GT-7F3A-0101"] == "barrier" and kinds[LOCK] == "door"
    status = await adapter.device_status(LOCK)
    assert (status.online, status.state) == (True, "LOCKED")
