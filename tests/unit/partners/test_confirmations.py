from __future__ import annotations

import asyncio

import pytest

from propdev.partners import Confirmation, Confirmations


async def test_a_waiter_gets_the_result_that_arrives_later() -> None:
    confirmations = Confirmations()
    waiting = asyncio.ensure_future(confirmations.wait("t1"))
    await asyncio.sleep(0)
    assert confirmations.resolve(Confirmation("t1", ok=True)) is True
    assert (await waiting).ok is True
    assert confirmations.waiting == 0


async def test_a_result_that_overtakes_the_accepted_answer_is_kept_for_the_waiter() -> None:
    confirmations = Confirmations()
    assert confirmations.resolve(Confirmation("t1", ok=False, error="E_JAMMED")) is False
    assert (await confirmations.wait("t1")).error == "E_JAMMED"


async def test_a_wait_bounded_by_a_timeout_leaves_nothing_behind() -> None:
    confirmations = Confirmations()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(confirmations.wait("t1"), timeout=0.01)
    assert confirmations.waiting == 0


async def test_only_the_newest_early_results_are_kept() -> None:
    confirmations = Confirmations(keep=2)
    for ticket in ("a", "b", "c"):
        confirmations.resolve(Confirmation(ticket, ok=True))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(confirmations.wait("a"), timeout=0.01)
    assert (await confirmations.wait("c")).ticket == "c"
