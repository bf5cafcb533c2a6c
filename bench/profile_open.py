"""Profile one node under the door-open load with py-spy: where the time of an open goes.

    .venv/bin/python bench/profile_open.py [--store embedded|postgresql] [--duration 10]
        [--connections 64] [--warmup 2] [--rate 200] [--out PATH] [--raw PATH] [--json PATH]

A tool, not a benchmark row: no baseline, no verdict. It starts one node the way its figure
does and drives the same open load (bench/common.py's raw load generator, a new command per
request, the opens spread over the five demo access points):

* ``embedded`` (G3, bench_open): SQLite, the in-process vendor simulator; the node pinned to
  CPU 0, one load generator on CPU 1.
* ``postgresql`` (G3pg, bench_cluster): a fresh PostgreSQL database, the machine's Redis (a
  random prefix), the vendor simulator as its own process, node n1 alone holding every shard;
  three load generators of a third of the connections each; nothing pinned.

After the warm-up, ``py-spy record --pid PID --threads --idle --rate R --format raw
--duration N --nonblocking`` samples the node for the load's window, while the node's CPU
time is read from ``/proc/<pid>/stat`` and per thread from ``/proc/<pid>/task`` at the
window's edges. The report (printed, and written as markdown with ``--out``) gives:

* opens/s in the window, node CPU ms per open, and per thread;
* the share of samples by layer (the leaf frame's file: propdev subpackages, aiohttp, TLS,
  json/msgpack, SQLAlchemy, psycopg, sqlite3, logging, the asyncio loop, ...), for the loop
  thread (MainThread) and for the other threads. A call into C (an ``execute``, a
  ``SSLObject.write``) counts for the Python frame that made it: py-spy cannot see native
  frames without stopping the process;
* the top functions by self and by inclusive samples, for each group.

Idle samples (a thread waiting: the loop in ``epoll_wait``, a worker on its queue or a
condition) are counted apart and left out of every share; ``IDLE_LEAVES`` is the rule. The
sampler is ``--nonblocking`` (the node is never stopped), so a sample may now and then tear.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import linecache
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    CLK_TCK,
    LOOPBACK,
    ROOT,
    LoadPlan,
    LoadResult,
    Target,
    free_port,
    load_in_subprocess,
    node_env,
    pinning_available,
    render_table,
    running_node,
    seed_demo,
    until,
)

LOOP_THREAD = "MainThread"
# The load's window is this much longer than the profile, which starts this much into it:
# the generators' start-up (imports, TLS handshakes) varies.
MARGIN = 2.0
TOP = 25

# A sample is idle when its leaf frame is a thread waiting: one of these functions, or a line
# of our own code that blocks on a queue, an event or a condition (read from the source: a
# C call such as ``queue.SimpleQueue.get`` leaves no frame of its own).
IDLE_LEAVES = re.compile(
    r"^(?:"
    r"\w*Selector\.select \(.*selectors\.py"  # the event loop in epoll_wait
    r"|(?:Condition\.wait|Event\.wait|Semaphore\.acquire|Thread\.join|"
    r"Thread\._wait_for_tstate_lock|Barrier\.wait) \(.*threading\.py"
    r"|Queue\.get \(.*queue\.py"
    r"|_worker \(.*concurrent/futures/thread\.py"  # a pool worker blocked in SimpleQueue.get
    r")"
)
IDLE_LINES = re.compile(
    r"\.get\((?:\s*\)|\s*(?:block|timeout)=)"  # queue.get(): dict.get always has a key
    r"|\.wait\(|\.acquire\(|\.join\(\)|\btime\.sleep\("
)

# (layer, pattern on a frame's file); the first match wins; "other" when none does.
LAYERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "ssl/TLS",
        re.compile(r"(?:^|/)ssl\.py$|asyncio/sslproto\.py$|propdev/http/tls_transport\.py$"),
    ),
    ("propdev.{}", re.compile(r"(?:^|/)propdev/(\w+)/")),
    ("propdev (top level)", re.compile(r"(?:^|/)propdev/\w+\.py$|(?:^|/)run\.py$")),
    ("aiohttp (+multidict, yarl)", re.compile(r"(?:^|/)(?:aiohttp|multidict|yarl|propcache)/")),
    ("json/msgpack", re.compile(r"(?:^|/)(?:json|msgpack|orjson)/")),
    ("sqlalchemy", re.compile(r"(?:^|/)sqlalchemy/")),
    ("psycopg", re.compile(r"(?:^|/)(?:psycopg|psycopg_pool)/")),
    ("sqlite3", re.compile(r"(?:^|/)sqlite3/")),
    ("redis", re.compile(r"(?:^|/)redis/")),
    ("structlog/logging", re.compile(r"(?:^|/)(?:structlog|logging)/")),
    (
        "crypto/JWT (cryptography, jwt, joserfc, authlib)",
        re.compile(r"(?:^|/)(?:cryptography|jwt|joserfc|authlib)/"),
    ),
    (
        "telemetry (opentelemetry, prometheus_client)",
        re.compile(r"(?:^|/)(?:opentelemetry|prometheus_client)/"),
    ),
    ("asyncio event loop", re.compile(r"(?:^|/)(?:asyncio/\w+|selectors|contextvars)\.py$")),
    ("greenlet", re.compile(r"(?:^|/)greenlet/")),
)

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")
SHORTEN = re.compile(r"^.*/(?:site-packages|lib/python3\.\d+)/")


# --- parsing and classifying py-spy's raw output -------------------------------------------


@dataclass(frozen=True)
class Stack:
    """One distinct stack of a thread (root first) and how many samples it got."""

    tid: int
    thread: str
    frames: tuple[str, ...]
    count: int


def parse_raw(text: str) -> list[Stack]:
    """py-spy's ``--format raw --threads``: ``thread (TID): NAME;frame;...;frame COUNT``."""
    stacks = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("thread ("):
            continue
        body, _, count = line.rpartition(" ")
        if not count.isdigit():  # a torn sample (--nonblocking): a frame held source text
            continue
        head, *frames = body.split(";")
        match = re.match(r"thread \((?:0x)?([0-9A-Fa-f]+)\): ?(.*)", head)
        if match is None:
            continue
        raw_tid = match.group(1)
        tid = int(raw_tid, 16) if head.startswith("thread (0x") else int(raw_tid)
        stacks.append(Stack(tid, match.group(2) or "?", tuple(frames), int(count)))
    return stacks


def short(path: str) -> str:
    """A module's path from its package (``aiohttp/web_app.py``, ``propdev/http/app.py``)."""
    if SHORTEN.match(path):
        return SHORTEN.sub("", path)
    root = str(ROOT) + "/"
    return path[len(root) :] if path.startswith(root) else path


def function_of(frame: str) -> str:
    """``func (file)`` without the line (one row per function), the file shortened."""
    match = FRAME.match(frame)
    return f"{match.group('func')} ({short(match.group('file'))})" if match else frame


def file_of(frame: str) -> str:
    match = FRAME.match(frame)
    return short(match.group("file")) if match else ""


def layer_of(frame: str) -> str:
    path = file_of(frame)
    for name, pattern in LAYERS:
        match = pattern.search(path)
        if match:
            return name.format(*match.groups()) if "{}" in name else name
    return "other"


def is_idle(stack: Stack) -> bool:
    if not stack.frames:
        return True
    leaf = stack.frames[-1]
    if IDLE_LEAVES.match(leaf):
        return True
    match = FRAME.match(leaf)
    if match is None or match.group("line") is None:
        return False
    source = linecache.getline(match.group("file"), int(match.group("line")))
    # A coroutine's frame is on the stack only while it runs: its ``await x.wait()`` is busy.
    return "await " not in source and bool(IDLE_LINES.search(source))


@dataclass
class Group:
    """The samples of some threads: idle apart; layers and functions over the busy ones."""

    name: str
    busy: int = 0
    idle: int = 0
    layers: Counter[str] = field(default_factory=Counter)
    self_: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    idle_leaves: Counter[str] = field(default_factory=Counter)

    def add(self, stack: Stack) -> None:
        if is_idle(stack):
            self.idle += stack.count
            self.idle_leaves[function_of(stack.frames[-1]) if stack.frames else "?"] += stack.count
            return
        self.busy += stack.count
        leaf = stack.frames[-1]
        self.layers[layer_of(leaf)] += stack.count
        self.self_[function_of(leaf)] += stack.count
        for func in {function_of(f) for f in stack.frames}:
            self.inclusive[func] += stack.count


def group_samples(stacks: Sequence[Stack]) -> tuple[Group, Group]:
    loop, others = Group("loop thread (MainThread)"), Group("other threads")
    for stack in stacks:
        (loop if stack.thread == LOOP_THREAD else others).add(stack)
    return loop, others


# --- the node's CPU, per thread --------------------------------------------------------------


def thread_cpu(pid: int) -> dict[int, tuple[str, float, float, int]]:
    """tid -> (comm, user CPU s, system CPU s, context switches) for every thread of ``pid``."""
    threads: dict[int, tuple[str, float, float, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = (task / "stat").read_text()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            switches = sum(
                int(line.split()[1])
                for line in (task / "status").read_text().splitlines()
                if "ctxt_switches" in line
            )
            threads[int(task.name)] = (
                comm,
                int(fields[11]) / CLK_TCK,
                int(fields[12]) / CLK_TCK,
                switches,
            )
    return threads


def process_cpu(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- a node and its load ---------------------------------------------------------------------


@dataclass
class Setup:
    """A running node and the load generators' plans that drive it."""

    store: str
    pid: int
    plans: list[LoadPlan]
    client_cpu: int | None
    description: str


def open_plans(
    port: int,
    ca_cert: Path,
    credentials: dict[str, Any],
    connections: list[int],
    pid: int | None,
    warmup: float,
    duration: float,
) -> list[LoadPlan]:
    import asyncio

    from bench.bench_open import check_open, log_in_residents, open_targets

    base_url = f"https://{LOOPBACK}:{port}"
    tokens = asyncio.run(log_in_residents(base_url, ca_cert, credentials))
    opens: list[Target] = open_targets(credentials, tokens)
    check_open(base_url, ca_cert, opens[0])
    return [
        LoadPlan(
            port=port,
            ca_cert=str(ca_cert),
            targets=opens,
            connections=n,
            warmup=warmup,
            duration=duration,
            engine="raw",
            server_pid=pid,
        )
        for n in connections
    ]


@contextlib.contextmanager
def embedded(args: argparse.Namespace) -> Iterator[Setup]:
    """The node as bench_open starts it (G3)."""
    pin = pinning_available()
    with tempfile.TemporaryDirectory(prefix="propdev-profile-open-") as tmp:
        data_dir = Path(tmp)
        env = node_env(data_dir, free_port(), PROPDEV_ACCESS_TOKEN_TTL="900")
        credentials = seed_demo(env)
        with running_node(data_dir, env, cpu=0 if pin else None) as node:
            plans = open_plans(
                node.port,
                node.ca_cert,
                credentials,
                [args.connections],
                node.process.pid,
                args.warmup,
                args.duration + MARGIN,
            )
            yield Setup(
                "embedded",
                node.process.pid,
                plans,
                1 if pin else None,
                "SQLite, in-process vendor; "
                + ("node on CPU 0, load generator on CPU 1" if pin else "NOT pinned")
                + f"; {args.connections} keep-alive TLS connections (as G3)",
            )


@contextlib.contextmanager
def postgresql(args: argparse.Namespace) -> Iterator[Setup]:
    """Node n1 as bench_cluster starts it for G3pg: PostgreSQL + Redis, vendor as a process."""
    import redis

    from bench.bench_cluster import GENERATORS, REDIS_URL, Owners, partner_sim, settled
    from tests.support.postgres import fresh_database

    prefix = f"profile-{uuid.uuid4().hex[:10]}"
    with (
        tempfile.TemporaryDirectory(prefix="propdev-profile-open-") as tmp,
        fresh_database() as database_url,
        contextlib.ExitStack() as stack,
    ):
        data_dir = Path(tmp)
        sim_port, port = free_port(), free_port()
        env = node_env(
            data_dir,
            port,
            PROPDEV_NODE_ID="n1",
            PROPDEV_DATABASE_URL=database_url,
            PROPDEV_REDIS_URL=REDIS_URL,
            PROPDEV_REDIS_PREFIX=prefix,
            PROPDEV_PARTNER_URL=f"https://{LOOPBACK}:{sim_port}",
            PROPDEV_CALLBACK_URL=f"https://{LOOPBACK}:{port}",
            PROPDEV_ACCESS_TOKEN_TTL="900",
            PROPDEV_PARTNER_TIMEOUT="2",
        )
        credentials = seed_demo(env)
        stack.enter_context(partner_sim(data_dir, sim_port, env))
        (data_dir / "n1").mkdir()
        (data_dir / "n1" / "pki").symlink_to(data_dir / "pki")
        node = stack.enter_context(running_node(data_dir / "n1", env, cpu=None))
        owners = Owners(redis.Redis.from_url(REDIS_URL), prefix)
        until(lambda: settled({"n1": node}, owners), within=30, what="n1 holds every shard")
        share = max(1, args.connections // GENERATORS)
        plans = open_plans(
            node.port,
            node.ca_cert,
            credentials,
            [share] * GENERATORS,
            None,
            args.warmup,
            args.duration + MARGIN,
        )
        yield Setup(
            "postgresql",
            node.process.pid,
            plans,
            None,
            "PostgreSQL + Redis, vendor simulator as its own process; nothing pinned; "
            f"{GENERATORS} load generators x {share} keep-alive TLS connections (as G3pg)",
        )


# --- profiling -------------------------------------------------------------------------------


@dataclass
class Profile:
    store: str
    description: str
    duration: float
    rate: int
    opens: int
    errors: int
    window_s: float
    node_cpu_s: float
    threads: list[dict[str, Any]]
    loop: Group
    others: Group
    pyspy_samples: int = 0
    gil: bool = False


def py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy not found: pip install the dev extra (py-spy is pinned there)")
    return found


def profile(setup: Setup, args: argparse.Namespace, raw_path: Path) -> Profile:
    """Drive the load; over its measured window, py-spy and the node's CPU per thread."""
    results: list[LoadResult | BaseException | None] = [None] * len(setup.plans)

    def drive(i: int) -> None:
        try:
            results[i] = load_in_subprocess(setup.plans[i], cpu=setup.client_cpu)
        except BaseException as exc:  # reported below, in this thread
            results[i] = exc

    drivers = [threading.Thread(target=drive, args=(i,)) for i in range(len(setup.plans))]
    for driver in drivers:
        driver.start()
    time.sleep(args.warmup + MARGIN / 2)  # the generators' start-up and warm-up
    before_threads, before = thread_cpu(setup.pid), process_cpu(setup.pid)
    sampled = subprocess.run(
        [
            py_spy(),
            "record",
            "--pid",
            str(setup.pid),
            "--threads",
            "--idle",
            "--full-filenames",
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--duration",
            str(int(args.duration)),
            "--nonblocking",
            *(["--gil"] if args.gil else []),
            "--output",
            str(raw_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    after_threads, after = thread_cpu(setup.pid), process_cpu(setup.pid)
    for driver in drivers:
        driver.join()
    if sampled.returncode != 0:
        raise RuntimeError(f"py-spy failed ({sampled.returncode}): {sampled.stderr.strip()}")
    failed = [r for r in results if not isinstance(r, LoadResult)]
    if failed:
        raise RuntimeError(f"a load generator failed: {failed[0]!r}")
    loads = [r for r in results if isinstance(r, LoadResult)]
    stacks = parse_raw(raw_path.read_text())
    loop, others = group_samples(stacks)
    names = {s.tid: s.thread for s in stacks}
    threads = []
    for tid, (comm, user, system, switches) in sorted(after_threads.items()):
        _, user_before, system_before, switches_before = before_threads.get(
            tid, (comm, 0.0, 0.0, 0)
        )
        spent = user + system - user_before - system_before
        samples = [s for s in stacks if s.tid == tid]
        threads.append(
            {
                "tid": tid,
                "name": names.get(tid, f"{comm} (no Python frames)"),
                "cpu_s": spent,
                "system_s": system - system_before,
                "switches": switches - switches_before,
                "busy_samples": sum(s.count for s in samples if not is_idle(s)),
                "idle_samples": sum(s.count for s in samples if is_idle(s)),
            }
        )
    found = re.search(r"Samples: (\d+)", sampled.stdout + sampled.stderr)
    return Profile(
        store=setup.store,
        description=setup.description,
        duration=float(int(args.duration)),
        rate=args.rate,
        opens=sum(r.ok for r in loads),
        errors=sum(r.errors for r in loads),
        window_s=max(r.window_s for r in loads),
        node_cpu_s=after - before,
        threads=threads,
        loop=loop,
        others=others,
        pyspy_samples=int(found.group(1)) if found else 0,
        gil=args.gil,
    )


# --- the report ------------------------------------------------------------------------------


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def counter_table(counts: Counter[str], whole: int, head: str, limit: int | None = None) -> str:
    rows = [[head, "samples", "share"]]
    for key, count in counts.most_common(limit):
        rows.append([f"`{key}`", str(count), pct(count, whole)])
    return render_table(rows, right=(1, 2))


def report(p: Profile, commit: str) -> str:
    per_s = p.opens / p.window_s if p.window_s else 0.0
    profiled = per_s * p.duration  # opens in the profiled seconds, at the load's rate
    ms_per_open = 1000 * p.node_cpu_s / profiled if profiled else float("nan")
    lines = [
        f"# Profile of the open path: {p.store} store, propdev at {commit}",
        "",
        f"`bench/profile_open.py --store {p.store}`: {p.description}. py-spy 0.4.3 "
        f"(`record --threads --idle --full-filenames --rate {p.rate} --format raw --nonblocking"
        f"{' --gil' if p.gil else ''}`), "
        f"{p.duration:g} s over the load's measured window.",
        "",
        "## Rate and CPU",
        "",
        f"* opens/s during the profile: **{per_s:,.1f}** ({p.opens} opens answered 2xx in "
        f"the load's {p.window_s:.1f} s window around the profile, {p.errors} errors)",
        f"* node CPU: {p.node_cpu_s:.2f} s in {p.duration:g} s "
        f"({100 * p.node_cpu_s / p.duration:.0f}% of a core), **{ms_per_open:.2f} ms per open**",
        "",
    ]
    rows = [
        ["thread (tid)", "CPU s", "of which system", "CPU ms/open", "switches/open", "busy", "idle"]
    ]
    for t in sorted(p.threads, key=lambda t: -float(t["cpu_s"])):
        if t["cpu_s"] <= 0 and not t["busy_samples"]:
            continue
        rows.append(
            [
                f"{t['name']} ({t['tid']})",
                f"{t['cpu_s']:.2f}",
                f"{t['system_s']:.2f}",
                f"{1000 * t['cpu_s'] / profiled:.3f}" if profiled else "-",
                f"{t['switches'] / profiled:.1f}" if profiled else "-",
                str(t["busy_samples"]),
                str(t["idle_samples"]),
            ]
        )
    lines += [
        "Per thread (threads with no CPU and no busy sample left out; CPU from "
        "`/proc/<pid>/task/<tid>/stat`, 10 ms ticks; context switches, voluntary and not, from "
        "its `status`; busy and idle: py-spy's samples):",
        "",
        render_table(rows, right=(1, 2, 3, 4, 5, 6)),
        "",
        "## Share of busy samples by layer",
        "",
        "A sample counts for the layer of its leaf frame (a call into C counts for the Python "
        "frame that made it: SQLite's and OpenSSL's own work show under their callers). Idle "
        "samples are apart: they are not in the shares.",
        "",
    ]
    for group in (p.loop, p.others):
        lines += [
            f"### {group.name}: {group.busy} busy samples, {group.idle} idle "
            f"({pct(group.idle, group.busy + group.idle)} of its samples)",
            "",
            counter_table(group.layers, group.busy, "layer"),
            "",
            "Idle samples by where the thread waited: "
            + ", ".join(f"`{k}` {v}" for k, v in group.idle_leaves.most_common(5))
            if group.idle
            else "No idle samples.",
            "",
        ]
    for group in (p.loop, p.others):
        lines += [
            f"## Top {TOP} functions, {group.name}",
            "",
            "By self samples (the function was the leaf):",
            "",
            counter_table(group.self_, group.busy, "function (file)", TOP),
            "",
            "By inclusive samples (the function was on the stack):",
            "",
            counter_table(group.inclusive, group.busy, "function (file)", TOP),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def as_json(p: Profile, commit: str) -> dict[str, Any]:
    def group(g: Group) -> dict[str, Any]:
        return {
            "busy": g.busy,
            "idle": g.idle,
            "layers": dict(g.layers.most_common()),
            "self": dict(g.self_.most_common(TOP)),
            "inclusive": dict(g.inclusive.most_common(TOP)),
        }

    return {
        "commit": commit,
        "store": p.store,
        "duration_s": p.duration,
        "opens": p.opens,
        "errors": p.errors,
        "opens_per_s": p.opens / p.window_s if p.window_s else 0.0,
        "node_cpu_ms_per_open": (
            1000 * p.node_cpu_s / (p.opens / p.window_s * p.duration) if p.opens else None
        ),
        "threads": p.threads,
        "loop": group(p.loop),
        "others": group(p.others),
    }


def git_commit() -> str:
    """The last commit that changed the node's code (``propdev/``), ``-dirty`` if it has
    uncommitted changes: what was profiled, whatever the tools' own commits since."""
    last = subprocess.run(
        ["git", "log", "-1", "--format=%h", "--", "propdev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "propdev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (last or "unknown") + ("-dirty" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["embedded", "postgresql"], default="embedded")
    parser.add_argument("--duration", type=int, default=10, help="seconds profiled")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument(
        "--gil", action="store_true", help="only samples of the thread holding the GIL"
    )
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw stacks here")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.connections < 1 or args.rate < 1:
        parser.error("--duration, --connections and --rate must be positive")
    start: Callable[[argparse.Namespace], contextlib.AbstractContextManager[Setup]] = (
        embedded if args.store == "embedded" else postgresql
    )
    commit = git_commit()
    with tempfile.TemporaryDirectory(prefix="propdev-pyspy-") as tmp:
        raw_path = args.raw or Path(tmp) / "stacks.txt"
        with start(args) as setup:
            result = profile(setup, args, raw_path)
    text = report(result, commit)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(as_json(result, commit), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
