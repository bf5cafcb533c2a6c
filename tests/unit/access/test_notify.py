"""The notifier decides per pushed event: withheld when a socket is live, released otherwise;
a failure leaves the rows held (they fall due on their own) and stops nothing."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from propdev.access import Notifier


class Outbox:
    def __init__(self, fail_first: int = 0) -> None:
        self.released: list[int] = []
        self.withheld: list[int] = []
        self.fail_first = fail_first

    async def release(self, event_id: int) -> int:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("store down")
        self.released.append(event_id)
        return 2

    async def withhold(self, event_id: int) -> int:
        self.withheld.append(event_id)
        return 2


def sockets(live: dict[str, int]):  # type: ignore[no-untyped-def]
    async def presence(user_id: str) -> int:
        return live.get(user_id, 0)

    return presence


def event(event_id: int, kind: str = "access.automatic") -> dict[str, object]:
    return {"id": event_id, "type": kind, "access_point_id": "ap-parking", "plate_hint": "C77"}


async def test_released_without_a_live_socket_withheld_with_one() -> None:
    outbox = Outbox()
    woken: list[bool] = []
    notifier = Notifier(outbox, sockets({"online": 1}), on_release=lambda: woken.append(True))
    notifier.start()
    try:
        with capture_logs() as logs:
            await notifier.on_event("user:online", event(1))
            await notifier.on_event("user:offline", event(2))
            await asyncio.wait_for(notifier.idle(), 5)
    finally:
        await notifier.stop()
    assert (outbox.withheld, outbox.released, woken) == ([1], [2], [True])
    decided = [(r["event"], r["event_id"], r["devices"]) for r in logs]
    assert decided == [("push_withheld", 1, 2), ("push_released", 2, 2)]


async def test_event_types_that_are_not_pushed_are_not_considered() -> None:
    outbox = Outbox()
    notifier = Notifier(outbox, sockets({}))
    notifier.start()
    try:
        for kind in ("access.granted", "access.denied", "pass.denied", "access.entry"):
            await notifier.on_event("user:u", event(1, kind))
        await notifier.on_event("user:u", event(2, "pass.used"))
        await notifier.on_event("user:u", event(3, "access.failed"))
        await asyncio.wait_for(notifier.idle(), 5)
    finally:
        await notifier.stop()
    assert outbox.released == [2, 3]


async def test_a_failed_decision_is_logged_and_later_ones_still_go() -> None:
    outbox = Outbox(fail_first=1)
    notifier = Notifier(outbox, sockets({}))
    notifier.start()
    try:
        with capture_logs() as logs:
            await notifier.on_event("user:u", event(1))
            await notifier.on_event("user:u", event(2))
            await asyncio.wait_for(notifier.idle(), 5)
    finally:
        await notifier.stop()
    assert outbox.released == [2] and notifier.failed == 1
    assert any(r["event"] == "push_undecided" and r["event_id"] == 1 for r in logs)


async def test_a_full_queue_leaves_the_decision_to_the_hold_not_the_publisher() -> None:
    notifier = Notifier(Outbox(), sockets({}), capacity=1)
    await notifier.on_event("user:u", event(1))
    await notifier.on_event("user:u", event(2))  # no worker: the queue is full
    assert notifier.dropped == 1
