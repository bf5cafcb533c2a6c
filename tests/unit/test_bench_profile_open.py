"""bench/profile_open.py: py-spy's raw stacks read and classified, and one short real run on the
embedded store whose report has every section the notes rely on."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from bench.profile_open import group_samples, is_idle, layer_of, main, parse_raw

ROOT = Path(__file__).resolve().parents[2]
LIB = "/usr/lib/python3.11"
SITE = f"{ROOT}/.venv/lib/python3.11/site-packages"
EXECUTOR = ROOT / "propdev" / "storage" / "sqlite_executor.py"
# The reader thread's wait: the line of its loop that blocks on its queue.
WAIT = next(
    n for n, line in enumerate(EXECUTOR.read_text().splitlines(), 1) if "self._reads.get()" in line
)

RAW = f"""\
thread (101): MainThread;<module> ({ROOT}/run.py:9);BaseEventLoop._run_once ({LIB}/asyncio/base_events.py:1898);EpollSelector.select ({LIB}/selectors.py:468) 40
thread (101): MainThread;<module> ({ROOT}/run.py:9);RequestHandler.start ({SITE}/aiohttp/web_protocol.py:500) 30
thread (101): MainThread;<module> ({ROOT}/run.py:9);Opening._record ({ROOT}/propdev/access/opening.py:376);SSLObject.write ({LIB}/ssl.py:920) 20
thread (101): MainThread;<module> ({ROOT}/run.py:9);Opening._record ({ROOT}/propdev/access/opening.py:376);Database.unit ({ROOT}/propdev/storage/db.py:260) 10
thread (202): sqlite-writer;Thread._bootstrap ({LIB}/threading.py:1002);SqliteExecutor._reader_loop ({ROOT}/propdev/storage/sqlite_executor.py:{WAIT}) 50
thread (202): sqlite-writer;Thread._bootstrap ({LIB}/threading.py:1002);Connection.execute ({SITE}/sqlalchemy/engine/base.py:1410);BaseCursor._execute_send ({SITE}/psycopg/_cursor_base.py:480) 5
thread (202): sqlite-writer;Thread._bootstrap ({LIB}/threading.py:1002);Thread._bootstrap_inner ({LIB}/threading.py:1045);torn frame
thread (303): pool;Thread._bootstrap ({LIB}/threading.py:1002);_worker ({LIB}/concurrent/futures/thread.py:81) 7
"""  # noqa: E501 - py-spy's lines as it writes them


def test_raw_stacks_are_read_per_thread_and_a_torn_sample_is_skipped() -> None:
    stacks = parse_raw(RAW)
    assert len(stacks) == 7  # the torn line (no count) is left out
    assert {(s.tid, s.thread) for s in stacks} == {
        (101, "MainThread"),
        (202, "sqlite-writer"),
        (303, "pool"),
    }
    assert sum(s.count for s in stacks) == 162


def test_waiting_threads_are_idle_and_left_out_of_the_shares() -> None:
    loop, others = group_samples(parse_raw(RAW))
    assert (loop.busy, loop.idle) == (60, 40)  # the loop in epoll_wait is idle
    # A reader blocked on its queue (a C call: its own line says so) and a pool worker.
    assert (others.busy, others.idle) == (5, 57)
    assert loop.layers == {
        "aiohttp (+multidict, yarl)": 30,
        "ssl/TLS": 20,
        "propdev.storage": 10,
    }
    assert loop.inclusive["Opening._record (propdev/access/opening.py)"] == 30
    assert loop.self_["SSLObject.write (ssl.py)"] == 20
    assert others.layers == {"psycopg": 5}
    assert not is_idle(parse_raw(RAW)[1])


def test_a_coroutine_running_its_await_line_is_busy_not_waiting() -> None:
    path = ROOT / "propdev" / "grpc" / "commands.py"
    line = next(
        n
        for n, text in enumerate(path.read_text().splitlines(), 1)
        if "await self._confirmations.wait(" in text
    )
    [stack] = parse_raw(f"thread (1): MainThread;f ({path}:{line}) 3")
    assert not is_idle(stack)


def test_layers_follow_the_leaf_frames_file() -> None:
    assert layer_of(f"f ({ROOT}/propdev/actors/system.py:1)") == "propdev.actors"
    assert layer_of(f"f ({ROOT}/propdev/http/tls_transport.py:1)") == "ssl/TLS"
    assert layer_of(f"f ({SITE}/structlog/_base.py:1)") == "structlog/logging"
    assert layer_of(f"f ({LIB}/json/encoder.py:1)") == "json/msgpack"
    assert layer_of(f"f ({LIB}/asyncio/events.py:1)") == "asyncio event loop"
    assert layer_of(f"f ({LIB}/uuid.py:1)") == "other"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_short_profile_of_the_embedded_store_has_every_section(tmp_path: Path) -> None:
    if shutil.which("py-spy", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("py-spy is not installed (the dev extra pins it)")
    out, figures = tmp_path / "profile.md", tmp_path / "profile.json"
    short = ["--store", "embedded", "--duration", "2", "--warmup", "1", "--connections", "8"]
    code = main([*short, "--out", str(out), "--json", str(figures)])
    assert code == 0
    report = out.read_text()
    for heading in (
        "# Profile of the open path: embedded store, propdev at",
        "## Rate and CPU",
        "## Share of busy samples by layer",
        "### loop thread (MainThread)",
        "### other threads",
        "## Top 25 functions, loop thread (MainThread)",
        "## Top 25 functions, other threads",
        "By self samples",
        "By inclusive samples",
    ):
        assert heading in report, heading
    result = json.loads(figures.read_text())
    assert result["opens"] > 0 and result["errors"] == 0
    assert result["node_cpu_ms_per_open"] > 0
    assert result["loop"]["busy"] > 0 and result["loop"]["idle"] > 0
    assert any(t["name"] == "sqlite-writer" and t["cpu_s"] > 0 for t in result["threads"])
    assert any(layer.startswith("propdev.") for layer in result["loop"]["layers"])
    assert "aiohttp (+multidict, yarl)" in result["loop"]["layers"]
