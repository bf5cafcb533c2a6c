from __future__ import annotations

import asyncio
import time
from typing import Any


async def _until(check: Any, within: float, show: Any = None) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"condition not met in time: {show() if show else None}"
        await asyncio.sleep(0.05)


async def test_a_node_knows_itself_as_a_live_member(membership_of: Any) -> None:
    me = await membership_of("a")
    assert me.healthy
    assert "a" in me.members()


async def test_joins_leaves_and_lapsed_leases_are_seen_by_the_others(membership_of: Any) -> None:
    a = await membership_of("a")
    if not membership_of.remote:
        assert a.members() == ("a",)  # the embedded node is alone, by design
        return
    b = await membership_of("b")
    await _until(lambda: a.members() == ("a", "b"), 10)
    await b.stop()  # a clean leave
    await _until(lambda: a.members() == ("a",), 10, show=a.members)
    c = await membership_of("c")
    await _until(lambda: a.members() == ("a", "c"), 10)
    if hasattr(c, "_heartbeat"):  # a crash: it stops renewing without leaving
        c._heartbeat = 3600.0
        await _until(lambda: a.members() == ("a",), 10, show=a.members)


async def test_an_announcement_is_seen_and_a_node_that_left_still_reads_the_others(
    membership_of: Any,
) -> None:
    a = await membership_of("a")
    if not membership_of.remote:
        await a.announce(draining=True)
        assert a.info("a")["draining"] is True
        return
    b = await membership_of("b")
    await _until(lambda: a.members() == ("a", "b"), 10)

    await b.announce(draining=True)
    await _until(lambda: a.info("b").get("draining") is True, 10, show=lambda: a.info("b"))
    await b.leave()

    await _until(lambda: a.members() == ("a",), 10, show=a.members)
    await _until(lambda: b.members() == ("a",), 10, show=b.members)
    assert b.healthy  # it reaches the registry, without being a member
