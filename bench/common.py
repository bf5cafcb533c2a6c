"""Shared helpers for the benchmarks: a node in a subprocess, a load generator, statistics.

The load generator runs as its own process (pinned to another core than the server) and is
started with ``python bench/common.py loadgen``; it reads its plan as JSON on stdin (tokens never
appear on a command line) and writes its result as JSON on stdout.

Two client engines:

* ``raw`` (default): asyncio streams over TLS with a pre-built HTTP/1.1 request and a minimal
  response parser (status line, ``Content-Length``). About 3x cheaper per request than the
  aiohttp client, so one client core can out-run one server core on cheap routes.
* ``aiohttp``: ``aiohttp.ClientSession`` with a keep-alive pool; a cross-check.

Each run opens N keep-alive connections, warms up, then counts the responses completed inside a
fixed window and records their latencies, the client's own CPU time and the server's CPU time
(``/proc/<pid>/stat``, all threads) over the same window.

It also holds the rules every figure follows (one place, used by every benchmark):

* **Errors fail a figure.** A non-2xx answer where success was expected, a connection error or
  an exception counts as an error; a figure with any error (candidate or baseline) is failed
  (``verdict`` "FAIL", ``ok`` false), whatever its ratio, and ``python -m bench`` exits non-zero.
* **Latency over successes only.** Percentiles are computed over successful answers; the
  error count and rate are reported beside them (``latency_summary``).
* **Interleaved rounds.** Baseline and candidate alternate, baseline first, over at least
  ``MIN_ROUNDS`` rounds (``interleave``); a figure reports the median ratio of the rounds and its
  spread (min, median, max). A figure measured over fewer rounds is failed.
* **No "pass" without a goal.** A figure without a ``Goal`` is "info", never "pass".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"


# --- processes -------------------------------------------------------------------------------


def pinning_available() -> bool:
    """Pin with taskset only when it exists and there are at least two CPUs to split."""
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed with ``taskset -c cpu`` (taskset execs, so the pid stays the same)."""
    if cpu is None:
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (``/proc/stat``: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / CLK_TCK


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (``/proc/<pid>/stat``)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


@dataclass
class Node:
    """A ``run.py serve`` subprocess on a free loopback port with its own data dir."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "pki" / "ca.pem"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def node_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROPDEV_")}
    env.update(
        {
            "PROPDEV_DATA_DIR": str(data_dir),
            "PROPDEV_HOST": LOOPBACK,
            "PROPDEV_PORT": str(port),
            "PROPDEV_PUBLIC_URL": f"https://{LOOPBACK}:{port}",
            "PROPDEV_RATE_LIMIT": "0",
            "PROPDEV_LOG_LEVEL": "warning",
            **extra,
        }
    )
    return env


def seed_demo(env: dict[str, str]) -> dict[str, Any]:
    """Run ``run.py seed-demo`` and return the demo credentials it wrote."""
    subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "seed-demo"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
    path = Path(env["PROPDEV_DATA_DIR"]) / "demo-credentials.json"
    return dict(json.loads(path.read_text()))


@contextlib.contextmanager
def running_node(
    data_dir: Path, env: dict[str, str], *, cpu: int | None, start_timeout: float = 60.0
) -> Iterator[Node]:
    """Start ``run.py serve`` (pinned to ``cpu``), wait for ``/healthz``, stop it with SIGINT."""
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pinned(cpu, [sys.executable, str(ROOT / "run.py"), "serve"]),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    node = Node(data_dir, int(env["PROPDEV_PORT"]), process, log_path)
    try:
        wait_healthy(node, start_timeout)
        yield node
    finally:
        stop(process)


def until(check: Any, *, within: float, what: str, every: float = 0.05) -> float:
    """Poll ``check()`` until truthy; the monotonic time it first was. Bounded by ``within``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(every)
    raise TimeoutError(f"not within {within} s: {what}")


def wait_healthy(node: Node, timeout: float) -> None:
    """Poll ``/healthz`` over TLS until it answers 200 (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    attempts = int(timeout / 0.1) + 1
    for _ in range(attempts):
        if node.process.poll() is not None:
            code = node.process.returncode
            raise RuntimeError(f"the node exited with {code}:\n{node.log_tail()}")
        if node.ca_cert.exists() and _healthz_ok(node):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise TimeoutError(f"no 200 from {node.base_url}/healthz in {timeout} s:\n{node.log_tail()}")


def _healthz_ok(node: Node) -> bool:
    context = ssl.create_default_context(cafile=str(node.ca_cert))
    request = f"GET /healthz HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n".encode()
    try:
        with socket.create_connection((LOOPBACK, node.port), timeout=2) as raw:
            with context.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
                tls.sendall(request)
                return tls.recv(64).startswith(b"HTTP/1.1 200")
    except (OSError, ssl.SSLError):
        return False


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int | None:
    """SIGINT (the node's clean stop), then SIGTERM, then SIGKILL; always reaps the child."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    return process.poll()


# --- load generator: plan and result ---------------------------------------------------------


@dataclass
class Target:
    """One request a connection repeats: method, path and headers (e.g. a bearer token).

    ``pace_s`` > 0 paces the connection: a request starts at least that long after the
    previous one started (a client that does not retry faster than it could be served).
    """

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    # Each request takes the next of these as its bearer token, shared by the target's
    # connections, so that no token is sent twice (cold tokens; raw client only).
    fresh_bearer_tokens: list[str] = field(default_factory=list)
    pace_s: float = 0.0


@dataclass
class LoadPlan:
    port: int
    ca_cert: str
    targets: list[Target]
    connections: int = 64
    warmup: float = 1.0
    duration: float = 5.0
    engine: str = "raw"
    server_pid: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadPlan:
        data = dict(data)
        data["targets"] = [Target(**t) for t in data["targets"]]
        return cls(**data)


@dataclass
class LoadResult:
    """A load run's window: ``ok`` 2xx answers; ``errors`` everything else (non-2xx, connection
    errors); rate and latency percentiles over the 2xx answers only."""

    ok: int
    errors: int
    statuses: dict[str, int]
    window_s: float
    req_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    client_cpu: float  # share of one core used by the load generator in the window
    server_cpu: float | None  # share of one core used by the server in the window
    other_cpu: float  # cores used by everything else on the machine in the window (noise)
    connections: int
    engine: str
    error_rate: float = 0.0  # errors / (ok + errors) in the window


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class _Window:
    """The measurement window: which completions count, and CPU times at both edges."""

    def __init__(self, start: float, end: float, server_pid: int | None) -> None:
        self.start = start
        self.end = end
        self.server_pid = server_pid
        self.samples: list[tuple[float, bool]] = []  # (latency, 2xx)
        self.statuses: dict[str, int] = {}
        self.cpu: dict[str, float] = {}

    def record(self, started: float, finished: float, status: str) -> None:
        if self.start <= finished < self.end:
            self.samples.append((finished - started, is_success(status)))
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def snapshot(self, edge: str) -> None:
        self.cpu[f"client_{edge}"] = time.process_time()
        self.cpu[f"machine_{edge}"] = machine_busy_seconds()
        if self.server_pid is not None:
            self.cpu[f"server_{edge}"] = process_cpu_seconds(self.server_pid)

    async def watch(self) -> None:
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        self.snapshot("start")
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        self.snapshot("end")


def _request_bytes(target: Target, port: int, bearer: str | None = None) -> bytes:
    lines = [f"{target.method} {target.path} HTTP/1.1", f"Host: {LOOPBACK}:{port}"]
    lines += [f"{name}: {value}" for name, value in target.headers.items()]
    if bearer is not None:
        lines.append(f"Authorization: Bearer {bearer}")
    if target.method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _raw_worker(
    plan: LoadPlan,
    target: Target,
    context: ssl.SSLContext,
    w: _Window,
    fresh: Iterator[str] | None = None,
) -> None:
    request = _request_bytes(target, plan.port)
    clock = time.perf_counter
    writer: asyncio.StreamWriter | None = None
    try:
        while clock() < w.end:
            if writer is None:
                reader, writer = await asyncio.open_connection(
                    LOOPBACK, plan.port, ssl=context, server_hostname=LOOPBACK
                )
            if fresh is not None:
                token = next(fresh, None)
                if token is None:  # ran out: an error, so the figure cannot pass unnoticed
                    w.record(clock(), clock(), "no-fresh-token")
                    break
                request = _request_bytes(target, plan.port, token)
            started = clock()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                lower = head.lower()
                at = lower.find(b"\r\ncontent-length:")
                if at < 0:
                    raise ConnectionError("no Content-Length in the response")
                length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)])
                await reader.readexactly(length)
                status = head[9:12].decode()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                w.record(started, clock(), type(exc).__name__)
                writer.close()
                writer = None
                continue
            w.record(started, clock(), status)
            if b"\r\nconnection: close" in lower:
                writer.close()
                writer = None
            if target.pace_s > 0:
                await asyncio.sleep(max(0.0, started + target.pace_s - clock()))
    finally:
        if writer is not None:
            writer.close()


async def _aiohttp_worker(plan: LoadPlan, target: Target, session: Any, w: _Window) -> None:
    import aiohttp

    url = f"https://{LOOPBACK}:{plan.port}{target.path}"
    clock = time.perf_counter
    while clock() < w.end:
        started = clock()
        try:
            async with session.request(target.method, url, headers=target.headers) as resp:
                await resp.read()
                status = str(resp.status)
        except (aiohttp.ClientError, OSError) as exc:
            status = type(exc).__name__
        w.record(started, clock(), status)
        if target.pace_s > 0:
            await asyncio.sleep(max(0.0, started + target.pace_s - clock()))


async def run_load(plan: LoadPlan) -> LoadResult:
    context = ssl.create_default_context(cafile=plan.ca_cert)
    now = time.perf_counter()
    w = _Window(now + plan.warmup, now + plan.warmup + plan.duration, plan.server_pid)
    watcher = asyncio.create_task(w.watch())
    targets = [plan.targets[i % len(plan.targets)] for i in range(plan.connections)]
    fresh = {id(t): iter(t.fresh_bearer_tokens) for t in plan.targets if t.fresh_bearer_tokens}
    if plan.engine == "raw":
        workers = [_raw_worker(plan, t, context, w, fresh.get(id(t))) for t in targets]
        await asyncio.wait_for(asyncio.gather(*workers), plan.warmup + plan.duration + 30)
    elif plan.engine == "aiohttp":
        import aiohttp

        if fresh:
            raise ValueError("fresh_bearer_tokens needs the raw client")

        connector = aiohttp.TCPConnector(limit=plan.connections, ssl=context)
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=30),
        ) as session:
            workers = [_aiohttp_worker(plan, t, session, w) for t in targets]
            await asyncio.wait_for(asyncio.gather(*workers), plan.warmup + plan.duration + 30)
    else:
        raise ValueError(f"unknown engine {plan.engine!r}")
    await watcher
    window = w.end - w.start
    latency = latency_summary(w.samples)  # percentiles over 2xx answers only
    ok = int(latency["ok"])
    client_cpu = (w.cpu["client_end"] - w.cpu["client_start"]) / window
    machine_cpu = (w.cpu["machine_end"] - w.cpu["machine_start"]) / window
    server_cpu = None
    if "server_start" in w.cpu:
        server_cpu = (w.cpu["server_end"] - w.cpu["server_start"]) / window
    return LoadResult(
        ok=ok,
        errors=int(latency["errors"]),
        statuses=dict(sorted(w.statuses.items())),
        window_s=round(window, 3),
        req_per_s=ok / window,
        p50_ms=latency["p50_ms"],
        p90_ms=latency["p90_ms"],
        p99_ms=latency["p99_ms"],
        max_ms=latency["max_ms"],
        error_rate=latency["error_rate"],
        client_cpu=client_cpu,
        server_cpu=server_cpu,
        other_cpu=max(0.0, machine_cpu - client_cpu - (server_cpu or 0.0)),
        connections=plan.connections,
        engine=plan.engine,
    )


def load_in_subprocess(plan: LoadPlan, *, cpu: int | None) -> LoadResult:
    """Run the load generator as its own process (pinned to ``cpu``) and return its result."""
    payload = json.dumps(asdict(plan))
    done = subprocess.run(
        pinned(cpu, [sys.executable, str(Path(__file__).resolve()), "loadgen"]),
        cwd=ROOT,
        input=payload.encode(),
        capture_output=True,
        check=False,
        timeout=plan.warmup + plan.duration + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr.decode()}")
    return LoadResult(**json.loads(done.stdout))


def load_in_parallel(plans: list[LoadPlan], cpu: int | None) -> list[LoadResult]:
    """Load generators at once (one process each, all on ``cpu``), results in plan order."""
    results: list[LoadResult | BaseException | None] = [None] * len(plans)

    def one(i: int) -> None:
        try:
            results[i] = load_in_subprocess(plans[i], cpu=cpu)
        except BaseException as exc:  # re-raised below, in the caller's thread
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(plans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if not isinstance(result, LoadResult):
            raise RuntimeError(f"a load generator failed: {result!r}")
    return [r for r in results if isinstance(r, LoadResult)]


# --- statistics and tables -------------------------------------------------------------------


def median_range(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def render_table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Plain-text table; the first row is the header, columns in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    """Write ``result`` as indented JSON to ``path`` (``--json``), if given."""
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n")


# --- the rules of a figure: goal, verdict, interleaved rounds, spread ----------------------

MIN_ROUNDS = 3
T = TypeVar("T")


@dataclass(frozen=True)
class Goal:
    """What a figure must reach: ``ratio >= level`` (or ``<=`` when ``higher`` is False).

    ``of="value"`` compares the figure's own value instead of its ratio (an absolute level,
    e.g. C2's seconds or G6m's megabytes, stated in the goal; the ratio is still printed).
    ``strict``: ``>`` or ``<`` (C2's "< 3 s").
    """

    level: float
    higher: bool = True
    of: str = "ratio"
    unit: str = ""
    strict: bool = False

    def met(self, measured: float) -> bool:
        if self.strict:
            return measured > self.level if self.higher else measured < self.level
        return measured >= self.level if self.higher else measured <= self.level

    def __str__(self) -> str:
        sign = (">" if self.higher else "<") + ("" if self.strict else "=")
        return f"{sign} {self.level:g}{' ' + self.unit if self.unit else ''}"


def is_success(status: str) -> bool:
    """A 2xx HTTP status; anything else (4xx, 5xx, an exception's name) is an error."""
    return len(status) == 3 and status.startswith("2") and status.isdigit()


def latency_summary(samples: Iterable[tuple[float, bool]]) -> dict[str, float | int]:
    """Percentiles (ms) over the successful samples only, with the error count and rate.

    ``samples`` are ``(seconds, succeeded)``: a fast error answer must not make p99 look
    better, so errors are counted, never timed.
    """
    good: list[float] = []
    errors = 0
    for seconds, succeeded in samples:
        if succeeded:
            good.append(seconds)
        else:
            errors += 1
    good.sort()
    total = len(good) + errors
    return {
        "ok": len(good),
        "errors": errors,
        "error_rate": errors / total if total else 0.0,
        "p50_ms": percentile(good, 50) * 1000,
        "p90_ms": percentile(good, 90) * 1000,
        "p99_ms": percentile(good, 99) * 1000,
        "max_ms": (good[-1] if good else 0.0) * 1000,
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """min, median and max of ``values`` (a figure's rounds)."""
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }


@dataclass
class Rounds(Generic[T]):
    """What ``interleave`` ran: each step's results in round order, and the order it ran them."""

    results: dict[str, list[T]]
    order: list[str]


def _check_rounds(rounds: int, steps: Mapping[str, object]) -> None:
    if rounds < MIN_ROUNDS:
        raise ValueError(f"{rounds} rounds: a figure needs at least {MIN_ROUNDS}")
    if len(steps) < 2:
        raise ValueError("interleave needs a baseline and at least one candidate")


def interleave(rounds: int, steps: Mapping[str, Callable[[], T]]) -> Rounds[T]:
    """Run ``steps`` (baseline first, then each candidate) once per round, ``rounds`` times:
    baseline, candidate, baseline, candidate, ... At least ``MIN_ROUNDS`` rounds."""
    _check_rounds(rounds, steps)
    out: Rounds[T] = Rounds({name: [] for name in steps}, [])
    for _ in range(rounds):
        for name, step in steps.items():
            out.results[name].append(step())
            out.order.append(name)
    return out


async def ainterleave(rounds: int, steps: Mapping[str, Callable[[], Awaitable[T]]]) -> Rounds[T]:
    """``interleave`` for coroutine functions."""
    _check_rounds(rounds, steps)
    out: Rounds[T] = Rounds({name: [] for name in steps}, [])
    for _ in range(rounds):
        for name, step in steps.items():
            out.results[name].append(await step())
            out.order.append(name)
    return out


def verdict(
    measured: float | None, goal: Goal | None, *, errors: int = 0, rounds: int = MIN_ROUNDS
) -> tuple[str, list[str]]:
    """("pass" | "FAIL" | "info", the reasons it is not trustworthy).

    Errors or too few rounds fail a figure, goal or not; without a goal it is "info".
    """
    reasons = []
    if errors:
        reasons.append(f"{errors} error(s)")
    if rounds < MIN_ROUNDS:
        reasons.append(f"{rounds} round(s) < {MIN_ROUNDS}")
    if reasons:
        return "FAIL", reasons
    if goal is None:
        return "info", []
    if measured is None:
        return "FAIL", ["nothing measured"]
    return ("pass" if goal.met(measured) else "FAIL"), []


def figure(
    goal: str,
    name: str,
    candidate: Sequence[float],
    baseline: Sequence[float] | None,
    baseline_name: str,
    unit: str,
    target: Goal | None,
    *,
    errors: int = 0,
    baseline_errors: int = 0,
    attempts: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One figure's record: candidate vs same-run baseline, round by round.

    ``candidate`` and ``baseline`` hold one value per round (interleaved); the ratio is taken
    per round and reported as its median with its spread. ``errors`` (the candidate's) and
    ``baseline_errors`` fail the figure; ``attempts`` (requests or calls made) gives the rate.
    """
    if not candidate:
        raise ValueError(f"{goal}: no rounds measured")
    if baseline is not None and len(baseline) != len(candidate):
        raise ValueError(f"{goal}: {len(candidate)} candidate rounds, {len(baseline)} baseline")
    ratios = (
        [c / b if b else float("nan") for c, b in zip(candidate, baseline, strict=True)]
        if baseline is not None
        else []
    )
    finite = [r for r in ratios if r == r]
    ratio = statistics.median(finite) if finite else None
    value = statistics.median(candidate)
    all_errors = errors + baseline_errors
    measured = value if target is not None and target.of == "value" else ratio
    result, reasons = verdict(measured, target, errors=all_errors, rounds=len(candidate))
    if baseline is not None and len(finite) < len(ratios):
        result, reasons = "FAIL", [*reasons, "a baseline round measured 0"]
    total = attempts if attempts is not None else None
    return {
        "goal": goal,
        "name": name,
        "value": value,
        "value_spread": spread(candidate),
        "baseline": statistics.median(baseline) if baseline is not None else None,
        "baseline_name": baseline_name,
        "unit": unit,
        "ratio": ratio,
        "ratio_min": min(finite) if finite else None,
        "ratio_max": max(finite) if finite else None,
        "ratios": ratios,
        "rounds": len(candidate),
        "target": str(target) if target is not None else "none",
        "errors": errors,
        "baseline_errors": baseline_errors,
        "error_rate": (all_errors / total) if total else (0.0 if not all_errors else None),
        "ok": not reasons,
        "invalid": reasons,
        "verdict": result,
        "passed": None if result == "info" else result == "pass",
        **extra,
    }


def load_errors(runs: Iterable[LoadResult]) -> tuple[int, int]:
    """(errors, attempts) over load-generator runs."""
    runs = list(runs)
    return sum(r.errors for r in runs), sum(r.ok + r.errors for r in runs)


def load_figure(
    goal: str,
    name: str,
    candidate: Sequence[LoadResult],
    baseline: Sequence[LoadResult],
    baseline_name: str,
    target: Goal | None,
    *,
    per_core: bool = False,
    unit: str = "req/s",
    **extra: Any,
) -> dict[str, Any]:
    """A figure from interleaved load runs: rate (or rate per server core), errors of both
    sides, and the candidate's latency percentiles over its successful answers."""

    def value(r: LoadResult) -> float:
        if per_core:
            return r.req_per_s / r.server_cpu if r.server_cpu else 0.0
        return r.req_per_s

    errors, attempts = load_errors(candidate)
    base_errors, base_attempts = load_errors(baseline)
    return figure(
        goal,
        name,
        [value(r) for r in candidate],
        [value(r) for r in baseline],
        baseline_name,
        "req/core-s" if per_core else unit,
        target,
        errors=errors,
        baseline_errors=base_errors,
        attempts=attempts + base_attempts,
        p50_ms=statistics.median(r.p50_ms for r in candidate),
        p99_ms=statistics.median(r.p99_ms for r in candidate),
        baseline_p99_ms=statistics.median(r.p99_ms for r in baseline),
        **extra,
    )


def figure_line(f: dict[str, Any]) -> str:
    """One line: value vs baseline, ratio (min-max), goal, errors and verdict."""
    base = "" if f["baseline"] is None else f" vs {f['baseline']:,.1f} ({f['baseline_name']})"
    ratio = ""
    if f.get("ratio") is not None:
        ratio = f" ratio {f['ratio']:.3f}"
        if f.get("ratio_min") is not None:
            ratio += f" ({f['ratio_min']:.3f}-{f['ratio_max']:.3f}, {f.get('rounds', '?')} rounds)"
    errors = f.get("errors", 0) + f.get("baseline_errors", 0)
    why = f" [{'; '.join(f['invalid'])}]" if f.get("invalid") else ""
    return (
        f"{f['goal']:5} {f['name'].strip()}: {f['value']:,.1f} {f['unit']}{base}{ratio} "
        f"goal {f['target']} errors {errors} {f.get('verdict', '?')}{why}"
    )


def print_figures(figures: Sequence[dict[str, Any]]) -> None:
    """One line per figure (``figure_line``)."""
    for f in figures:
        print(figure_line(f))


def _loadgen_main() -> None:
    plan = LoadPlan.from_json(json.loads(sys.stdin.read()))
    result = asyncio.run(run_load(plan))
    sys.stdout.write(json.dumps(asdict(result)) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="benchmark helpers")
    parser.add_argument("command", choices=["loadgen"])
    parser.parse_args()
    _loadgen_main()
