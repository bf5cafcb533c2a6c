"""Pushes go out only for residents with no live socket, and a failing provider stops nothing."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from propdev.access import LoggingPushProvider, Notifier, PushMessage, push_for


class Recording:
    name = "recording"

    def __init__(self, fail_first: int = 0) -> None:
        self.sent: list[PushMessage] = []
        self.fail_first = fail_first

    async def send(self, message: PushMessage) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("provider down")
        self.sent.append(message)


def sockets(live: dict[str, int]):  # type: ignore[no-untyped-def]
    async def presence(user_id: str) -> int:
        return live.get(user_id, 0)

    return presence


EVENT = {"id": 7, "type": "access.automatic", "access_point_id": "ap-parking", "plate_hint": "C77"}


async def test_only_residents_without_a_live_socket_get_a_push() -> None:
    provider = Recording()
    notifier = Notifier(provider, sockets({"online-user": 1}))
    notifier.start()
    try:
        await notifier.on_event("user:online-user", EVENT)
        await notifier.on_event("user:away-user", EVENT)
        await asyncio.wait_for(notifier.idle(), 10)
    finally:
        await notifier.stop()
    assert [m.user_id for m in provider.sent] == ["away-user"]
    message = provider.sent[0]
    assert message.title == "Barrier opened for your car"
    assert message.data["id"] == 7 and "C77" in message.body


async def test_a_failing_provider_is_logged_and_later_pushes_still_go() -> None:
    provider = Recording(fail_first=1)
    notifier = Notifier(provider, sockets({}))
    notifier.start()
    try:
        await notifier.on_event("user:u1", EVENT)
        await notifier.on_event("user:u1", {**EVENT, "id": 8})
        await asyncio.wait_for(notifier.idle(), 10)
    finally:
        await notifier.stop()
    assert [m.data["id"] for m in provider.sent] == [8]
    assert (notifier.failed, notifier.pushed) == (1, 1)


async def test_a_full_queue_drops_the_push_not_the_publisher() -> None:
    notifier = Notifier(Recording(), sockets({}), capacity=1)  # no worker: the queue stays full
    await notifier.on_event("user:u1", EVENT)
    await notifier.on_event("user:u1", EVENT)
    assert notifier.dropped == 1


async def test_the_logging_provider_writes_one_record_per_push() -> None:
    with capture_logs() as logs:
        await LoggingPushProvider().send(push_for("u1", EVENT))
    assert [(r["event"], r["user_id"], r["event_id"]) for r in logs] == [("push_sent", "u1", 7)]
