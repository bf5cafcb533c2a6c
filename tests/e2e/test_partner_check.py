"""``run.py partner check NAME`` against a vendor's sandbox (``run.py partner-sim``) with the node
taking its callbacks: one line per step, exit 0 when all pass, non-zero naming what failed; a
vendor that confirms later (acme: 202 + ticket, then a ``command_result`` callback) passes once
its confirming callback reaches the node, and fails saying so when it does not in time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from propdev.config import Settings
from tests.support.partner import ACME, ACME_DEVICE, add_acme_door
from tests.support.processes import cli_env, run_cli
from tests.support.stack import NodeAndVendor, node_and_vendor

pytestmark = pytest.mark.slow

STEPS = ["status", "open", "idempotent retry", "callback round trip", "signed webhook"]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[NodeAndVendor, Path]]:
    data_dir = tmp_path / "data"
    seeded = await run_cli(["seed-demo"], cli_env(data_dir))
    assert seeded.returncode == 0, str(seeded)
    async with node_and_vendor(data_dir, tmp_path / "logs") as running:
        yield running, data_dir


@pytest.fixture
async def acme_stack(tmp_path: Path) -> AsyncIterator[tuple[NodeAndVendor, Path]]:
    """The demo estate plus partner ``acme`` and its door; ``partner-sim`` serves both."""
    data_dir = tmp_path / "data"
    await add_acme_door(Settings.from_env({"PROPDEV_DATA_DIR": str(data_dir)}))
    async with node_and_vendor(data_dir, tmp_path / "logs") as running:
        yield running, data_dir


async def check(stack: NodeAndVendor, data_dir: Path, *args: str) -> tuple[int, list[str]]:
    env = cli_env(data_dir, PROPDEV_PARTNER_URL=stack.sim_url)
    done = await run_cli(["partner", "check", *args], env)
    lines = done.stdout.strip().splitlines()
    return done.returncode, lines


async def test_a_healthy_sandbox_passes_every_step(
    stack: tuple[NodeAndVendor, Path],
) -> None:
    running, data_dir = stack
    async with running.http.post(
        f"{running.sim_url}/sim/v1/passages", json={"after_open_ms": 20}
    ) as resp:
        assert resp.status == 200
    code, lines = await check(running, data_dir, "simulator", "--device", "sim-door-1")
    assert [line.split(":")[0] for line in lines[:-1]] == [f"PASS {s}" for s in STEPS], lines
    assert code == 0
    async with running.http.get(f"{running.sim_url}/sim/v1/commands") as resp:
        commands = await resp.json()
    assert len({c["request_id"] for c in commands}) == 1  # the retry was the same command


async def test_a_refusing_sandbox_fails_and_says_which_step(
    stack: tuple[NodeAndVendor, Path],
) -> None:
    running, data_dir = stack
    async with running.http.post(
        f"{running.sim_url}/sim/v1/faults", json={"mode": "deny", "latency_ms": 0}
    ) as resp:
        assert resp.status == 200
    code, lines = await check(running, data_dir, "simulator", "--wait", "1")
    assert code == 1, lines
    verdicts = dict(line.split(":")[0].split(" ", 1)[::-1] for line in lines[:-1])
    assert verdicts["status"] == "PASS" and verdicts["open"] == "FAIL", lines


async def test_an_unknown_partner_is_named(stack: tuple[NodeAndVendor, Path]) -> None:
    running, data_dir = stack
    code, lines = await check(running, data_dir, "nobody")
    assert (code, lines) == (2, ["no partner 'nobody' is registered"])


async def test_a_vendor_that_confirms_later_passes_once_its_callback_reaches_the_node(
    acme_stack: tuple[NodeAndVendor, Path],
) -> None:
    running, data_dir = acme_stack
    code, lines = await check(running, data_dir, ACME, "--device", ACME_DEVICE, "--wait", "20")
    assert [line.split(":")[0] for line in lines[:-1]] == [f"PASS {s}" for s in STEPS], lines
    assert "confirmed by callback" in lines[1], lines
    assert code == 0
    async with running.http.get(f"{running.sim_url}/sim/acme/v1/commands") as resp:
        commands = await resp.json()
    assert len({c["request_id"] for c in commands}) == 1  # the retry was the same command


async def test_a_vendor_whose_confirmation_does_not_come_in_time_fails_the_open_saying_so(
    acme_stack: tuple[NodeAndVendor, Path],
) -> None:
    running, data_dir = acme_stack
    async with running.http.post(
        f"{running.sim_url}/sim/acme/v1/faults", json={"mode": "slow", "latency_ms": 5000}
    ) as resp:
        assert resp.status == 200
    code, lines = await check(running, data_dir, ACME, "--device", ACME_DEVICE, "--wait", "1")
    assert code == 1, lines
    verdicts = dict(line.split(":")[0].split(" ", 1)[::-1] for line in lines[:-1])
    assert verdicts["status"] == "PASS" and verdicts["open"] == "FAIL", lines
    assert "no confirming callback" in lines[1] and "within 1s" in lines[1], lines
