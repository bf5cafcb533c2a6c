"""For access e2e tests: a running node whose ``Node`` the test holds (to inject a clock and a
push provider), and the partner ``simulator`` presenting credentials at a device as a vendor
does: ``POST /partner/v1/events`` over mTLS with its bound token and a signed body."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from propdev.node import Node
from propdev.push import PushMessage, SendResult, Verdict
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.partner import PartnerClient, partner_client

PARTNER = "simulator"  # the demo estate's vendor


class MovableClock:
    """Epoch seconds, real by default; ``set``/``advance`` pin and move it."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self) -> float:
        return time.time() if self.at is None else self.at

    def set(self, at: float) -> None:
        self.at = at

    def advance(self, seconds: float) -> None:
        self.at = self() + seconds


@dataclass
class RecordingPush:
    """The node's FCM provider in these tests: records (token, message) and accepts."""

    platform: str = "fcm"
    sent: list[tuple[str, PushMessage]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def send(self, token: str, message: PushMessage) -> SendResult:
        async with self._changed:
            self.sent.append((token, message))
            self._changed.notify_all()
        return SendResult(Verdict.DELIVERED, 200)

    async def close(self) -> None:
        pass

    async def wait_for(self, n: int, *, within: float = 10) -> list[tuple[str, PushMessage]]:
        """Wait (woken by each push; ``within`` bounds a hang) until ``n`` were sent."""

        async def waiting() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.sent) >= n)

        await asyncio.wait_for(waiting(), within)
        return list(self.sent)


@dataclass
class AccessNode:
    running: RunningNode
    node: Node
    clock: MovableClock
    push: RecordingPush
    partner: PartnerClient
    _token: str | None = None

    def device_of(self, access_point_id: str) -> str:
        return str(
            next(
                a["device_id"]
                for a in self.running.credentials["access_points"]
                if a["id"] == access_point_id
            )
        )

    async def partner_posts(self, access_point_id: str, type: str, **fields: Any) -> str:
        """The partner posts one ``plate_recognized``/``pass_presented`` (or any event) of the
        access point's device, seen now by the node's clock, to ``/partner/v1/events``; the
        event's outcome: ``accepted``, ``duplicate`` or ``rejected:<reason>``. The 202 comes
        once the device actor has decided (and the vendor was asked)."""
        if self._token is None:
            self._token = await self.partner.token()
        at = dt.datetime.fromtimestamp(self.clock(), dt.UTC).isoformat()
        event = {
            "event_id": uuid.uuid4().hex,
            "device_id": self.device_of(access_point_id),
            "type": type,
            "occurred_at": at,
            **fields,
        }
        status, body = await self.partner.post([event], token=self._token)
        assert status == 202, (status, body)
        if body["rejected"]:
            return f"rejected:{body['rejected'][0]['reason']}"
        return "accepted" if body["accepted"] == 1 else "duplicate"

    async def audit(self, access_point_id: str) -> list[dict[str, Any]]:
        token = await self.running.token_for("operator")
        async with self.running.http.get(
            f"{self.running.url}/admin/api/v1/audit",
            params={"access_point_id": access_point_id},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            return list((await resp.json())["entries"])


@contextlib.asynccontextmanager
async def access_node(data_dir: Path, **env: str) -> AsyncIterator[AccessNode]:
    clock = MovableClock()
    push = RecordingPush()
    held: list[Node] = []

    def wire(node: Node) -> None:
        node.set_clock(clock)
        if "PROPDEV_FCM_CREDENTIALS" not in env:
            node.access.sender.use(push)
        held.append(node)

    async with (
        running_node(node_settings(data_dir, **env), on_node=wire) as running,
        partner_client(running.url, data_dir, PARTNER, keep_alive=True) as partner,
    ):
        yield AccessNode(running, held[0], clock, push, partner)
