"""``propdev.node.settle_heap``: run by ``run.py serve`` once the node listens (in a process of
its own here: it changes the whole interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from propdev.node import GC_THRESHOLDS

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json
from propdev.node import settle_heap
start_up = [[i] for i in range(1000)]  # long-lived objects of start-up
garbage = []
garbage.append(garbage)  # a cycle nobody holds once deleted
del garbage
before = gc.get_threshold()
settle_heap()
print(json.dumps({
    "before": before,
    "after": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "young": gc.get_count()[0],
}))
"""


def test_start_up_objects_are_frozen_and_the_young_generation_collected_less_often() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert result["before"] == [700, 10, 10]  # CPython's defaults until the node settles
    assert tuple(result["after"]) == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700
    assert result["frozen"] > 1000  # start-up's objects, ours among them
    assert result["young"] < 50  # collected before freezing: nothing young is frozen
