"""Fixtures of the supervision tests: children without an event loop dependency."""

from __future__ import annotations

from typing import Any

import pytest

from propdev.supervision import Parent


class FakeChild:
    """A `Child` that records what its supervisor does to it."""

    def __init__(self, id: str, journal: list[tuple[str, str]]) -> None:
        self._id = id
        self.journal = journal
        self.parent: Parent | None = None
        self.restarts = 0
        self.state = "idle"

    @property
    def id(self) -> str:
        return self._id

    @property
    def crashed(self) -> bool:
        return self.state == "crashed"

    async def start(self) -> None:
        self.journal.append(("start", self._id))
        self.state = "running"

    async def stop(self, shutdown: float | None = None) -> None:
        self.journal.append(("stop", self._id))
        self.state = "stopped"

    def close(self) -> None:
        self.journal.append(("close", self._id))
        self.state = "closed"

    def crash(self, exc: BaseException | None = None) -> None:
        assert self.parent is not None
        self.state = "crashed"
        self.parent.child_failed(self._id, exc or RuntimeError(f"{self._id} crashed"))

    def snapshot(self) -> dict[str, Any]:
        return {"type": "actor", "id": self._id, "state": self.state, "restarts": self.restarts}


class RecordingParent:
    def __init__(self) -> None:
        self.failures: list[tuple[str, BaseException]] = []

    def child_failed(self, child_id: str, exc: BaseException) -> None:
        self.failures.append((child_id, exc))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def journal() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
