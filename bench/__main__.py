"""Run every benchmark, print one table (figure, same-run baseline, ratio, goal, pass/fail).

    .venv/bin/python -m bench [--quick] [--only NAME ...] [--json PATH] [--save]

Each benchmark runs in its own process and writes its JSON; this collects their figures into
one list. ``--json PATH`` writes the whole result (every benchmark's own JSON too) for a
comparison between commits; ``--save`` writes it to ``docs/benchmarks/<date>-<commit>.json``
with a markdown table beside it. ``--quick`` runs fewer and shorter rounds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MEMORY_GOAL_MB = 150.0

Figure = dict[str, Any]


def _figure(
    goal: str,
    name: str,
    value: float,
    baseline: float | None,
    base_name: str,
    unit: str,
    ratio: float | None,
    target: str,
    passed: bool | None,
    **extra: Any,
) -> Figure:
    return {
        "goal": goal,
        "name": name,
        "value": value,
        "baseline": baseline,
        "baseline_name": base_name,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "passed": passed,
        **extra,
    }


def runtime_figures(r: dict[str, Any]) -> list[Figure]:
    tell, ask, pop = r["tell"], r["ask"], r["population"]
    return [
        _figure(
            "G6",
            "actor tell",
            tell["runtime_per_s"],
            tell["bare_per_s"],
            "asyncio.Queue put/get",
            "msg/s",
            tell["ratio"],
            f">= {tell['goal']}",
            tell["ratio"] >= tell["goal"],
        ),
        _figure(
            "G6",
            "actor ask",
            ask["runtime_per_s"],
            ask["bare_per_s"],
            "Queue + Future round trip",
            "ask/s",
            ask["ratio"],
            f">= {ask['goal']}",
            ask["ratio"] >= ask["goal"],
        ),
        _figure(
            "G6m",
            f"RSS of {pop['actors']:,} idle device actors",
            pop["rss_delta_mb"],
            None,
            "",
            "MB",
            None,
            f"< {MEMORY_GOAL_MB:g} MB",
            pop["rss_delta_mb"] < MEMORY_GOAL_MB,
        ),
        _figure(
            "G6a",
            "actor activations",
            pop["activations_per_s"],
            None,
            "",
            "/s",
            None,
            "reported",
            None,
        ),
        _figure(
            "G6p",
            "actor passivations",
            pop["passivations_per_s"] or 0,
            None,
            "",
            "/s",
            None,
            "reported",
            None,
        ),
    ]


def open_figures(r: dict[str, Any]) -> list[Figure]:
    a, b, ratio, cpu = r["A"], r["B"], r["ratio"], r["cpu_ratio"]
    figures = [
        _figure(
            "G3",
            "door open (in-process vendor), POST .../open",
            b["req_per_s"]["median"],
            a["req_per_s"]["median"],
            "node's GET /healthz",
            "req/s",
            ratio["median"],
            ">= 0.5",
            ratio["median"] >= 0.5,
            ratio_min=ratio["min"],
            ratio_max=ratio["max"],
            p50_ms=b["p50_ms"],
            p99_ms=b["p99_ms"],
            baseline_p99_ms=a["p99_ms"],
            errors=b["errors"],
            server_ms_per_req=b["server_cpu_ms_per_req"],
            baseline_server_ms_per_req=a["server_cpu_ms_per_req"],
        ),
    ]
    if cpu is not None:
        figures.append(
            _figure(
                "G3c",
                "  per server core (noise-robust)",
                b["req_per_server_core_s"],
                a["req_per_server_core_s"],
                "/healthz per core",
                "req/core-s",
                cpu["median"],
                ">= 0.5",
                cpu["median"] >= 0.5,
                ratio_min=cpu["min"],
                ratio_max=cpu["max"],
            )
        )
    return figures


def own_figures(r: dict[str, Any]) -> list[Figure]:
    return list(r.get("figures", []))


# name -> (argv for a full run, argv for --quick, adapter to figures)
BENCHMARKS: dict[str, tuple[list[str], list[str], Callable[[dict[str, Any]], list[Figure]]]] = {
    "bench_runtime": (
        [],
        ["--rounds", "3", "--tells", "100000", "--asks", "20000"],
        runtime_figures,
    ),
    "bench_micro": ([], ["--quick"], own_figures),
    "bench_http": ([], ["--quick"], own_figures),
    "bench_open": (
        ["--rounds", "3", "--duration", "5"],
        ["--rounds", "3", "--duration", "3"],
        open_figures,
    ),
    "bench_vendors": ([], ["--quick"], own_figures),
    "bench_httpsig": ([], ["--quick"], own_figures),
    "bench_ws": ([], ["--quick"], own_figures),
    "bench_cluster": ([], ["--quick"], own_figures),  # the cluster engineer's, when present
}


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "propdev", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "") if done.returncode == 0 else "?"


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def rows(figures: list[Figure]) -> list[list[str]]:
    out = [["goal", "figure", "value", "same-run baseline", "ratio", "goal", "result"]]
    for f in figures:
        result = "-" if f["passed"] is None else ("pass" if f["passed"] else "FAIL")
        baseline = "" if f["baseline"] is None else f"{fmt(f['baseline'])} ({f['baseline_name']})"
        ratio = "-" if f["ratio"] is None else f"{f['ratio']:.3f}"
        if f.get("ratio_min") is not None and f["ratio"] is not None:
            ratio += f" ({f['ratio_min']:.2f}-{f['ratio_max']:.2f})"
        value = fmt(f["value"], f["unit"])
        if f.get("p99_ms") is not None:
            value += f", p50/p99 {f['p50_ms']:.0f}/{f['p99_ms']:.0f} ms"
        out.append([f["goal"], f["name"], value, baseline, ratio, f["target"], result])
    return out


def text_table(table: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in table[1:]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--json", type=Path, help="write the combined result here")
    parser.add_argument("--save", action="store_true", help="write docs/benchmarks/<date>-<commit>")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.UTC)
    commit = git_commit()
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    figures: list[Figure] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="propdev-bench-") as tmp:
        for name, (full, quick, adapt) in BENCHMARKS.items():
            if args.only and name not in args.only:
                continue
            script = HERE / f"{name}.py"
            if not script.exists():
                continue
            out = Path(tmp) / f"{name}.json"
            argv = [sys.executable, str(script), *(quick if args.quick else full)]
            print(f"== {name} (load {os.getloadavg()[0]:.1f}) ==", flush=True)
            code = subprocess.run([*argv, "--json", str(out)], cwd=ROOT, check=False).returncode
            if code != 0 or not out.exists():
                failed.append(name)
                print(f"{name} failed with exit code {code}", flush=True)
                continue
            results[name] = json.loads(out.read_text())
            figures += adapt(results[name])
    table = rows(figures)
    load_after = os.getloadavg()
    print()
    print(text_table(table))
    print(
        f"\ncommit {commit}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"(2 cores shared with other work: ratios, not absolute figures, are the result)"
    )
    if failed:
        print("FAILED to run: " + ", ".join(failed))
    combined = {
        "date": started.isoformat(timespec="seconds"),
        "commit": commit,
        "python": platform.python_version(),
        "quick": args.quick,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "figures": figures,
        "failed": failed,
        "benchmarks": results,
    }
    targets = [args.json] if args.json else []
    if args.save:
        stem = ROOT / "docs" / "benchmarks" / f"{started:%Y-%m-%d}-{commit}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        targets.append(stem.with_suffix(".json"))
        stem.with_suffix(".md").write_text(
            f"# Benchmarks {started:%Y-%m-%d}, commit {commit}\n\n"
            f"`.venv/bin/python -m bench{' --quick' if args.quick else ''}`; load average "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.\n\n"
            + markdown_table(table)
            + "\n"
        )
    for path in targets:
        path.write_text(json.dumps(combined, indent=2) + "\n")
        print(f"JSON in {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
