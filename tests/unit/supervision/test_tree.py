from __future__ import annotations

import json

from propdev.supervision import (
    Backoff,
    ChildSpec,
    EscalationError,
    RestartIntensity,
    SupervisionTree,
    Supervisor,
)
from tests.unit.supervision.conftest import FakeChild


async def test_the_tree_snapshot_is_node_then_supervisors_then_actors() -> None:
    journal: list[tuple[str, str]] = []
    tree = SupervisionTree("n1")
    devices = Supervisor("devices")
    await tree.add(devices)
    await tree.start()
    devices.attach(FakeChild("device:1", journal))
    snapshot = json.loads(json.dumps(tree.snapshot()))
    assert (snapshot["node"], snapshot["failed"], snapshot["strategy"]) == (
        "n1",
        False,
        "one_for_one",
    )
    (supervisor,) = snapshot["supervisors"]
    assert (supervisor["id"], supervisor["strategy"], supervisor["restarts"]) == (
        "devices",
        "one_for_one",
        0,
    )
    assert [actor["id"] for actor in supervisor["actors"]] == ["device:1"]
    await tree.stop()


async def test_the_snapshot_can_cap_the_actors_it_lists() -> None:
    tree = SupervisionTree("n1")
    devices = Supervisor("devices")
    await tree.add(devices)
    await tree.start()
    for i in range(10):
        devices.attach(FakeChild(f"device:{i}", []))
    (supervisor,) = tree.snapshot(max_actors=3)["supervisors"]
    assert len(supervisor["actors"]) == 3
    assert supervisor["children_total"] == 10
    await tree.stop()


async def test_a_failed_tree_reports_itself_and_stays_in_the_process() -> None:
    failures: list[EscalationError] = []
    child = FakeChild("a", [])
    inner = Supervisor(
        "inner",
        [ChildSpec("a", start=lambda: child)],
        intensity=RestartIntensity(intensity=0, period=1.0),
    )
    tree = SupervisionTree(
        "n1",
        intensity=RestartIntensity(intensity=0, period=1.0),
        backoff=Backoff(initial=0),
        on_failed=failures.append,
    )
    await tree.add(inner)
    await tree.start()
    child.crash()
    await tree.settle()
    assert tree.failed
    assert tree.failure is failures[0]
    assert tree.snapshot()["state"] == "failed"
    assert child.state == "stopped"
