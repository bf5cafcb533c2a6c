"""For access e2e tests: a running node whose ``Node`` the test holds (to inject a clock, a push
provider, and to present credentials at a device as a partner callback would)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from propdev.access import PushMessage
from propdev.actors.messages import DeviceEvent, DeviceEvents
from propdev.node import Node
from tests.e2e.conftest import RunningNode, node_settings, running_node


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
    name: str = "recording"
    sent: list[PushMessage] = field(default_factory=list)

    async def send(self, message: PushMessage) -> None:
        self.sent.append(message)


@dataclass
class AccessNode:
    running: RunningNode
    node: Node
    clock: MovableClock
    push: RecordingPush

    def device_of(self, access_point_id: str) -> str:
        return str(
            next(
                a["device_id"]
                for a in self.running.credentials["access_points"]
                if a["id"] == access_point_id
            )
        )

    async def present(self, access_point_id: str, type: str, **fields: Any) -> str:
        """A partner's ``plate_recognized``/``pass_presented`` for the access point's device."""
        event = DeviceEvent(
            partner_id="simulator",
            event_id=str(uuid.uuid4()),
            device_id=self.device_of(access_point_id),
            type=type,
            occurred_at=self.clock(),
            **fields,
        )
        outcome = await self.node.system.ask(
            f"device:{access_point_id}", DeviceEvents((event,)), timeout=30
        )
        return str(outcome[0])

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
        node.access.set_clock(clock)
        node.access.notifier.provider = push
        held.append(node)

    async with running_node(node_settings(data_dir, **env), on_node=wire) as running:
        yield AccessNode(running, held[0], clock, push)
