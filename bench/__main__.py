"""Run every benchmark, print one table (figure, same-run baseline, ratio, goal, verdict).

    .venv/bin/python -m bench [--quick] [--only NAME ...] [--json PATH] [--save] [--allow-errors]

Every figure follows bench/common.py's rules: a verdict of "pass" or "FAIL" against its goal,
"info" when it has none; a figure with errors (or fewer than 3 interleaved rounds) is "FAIL"
whatever its ratio, and makes this command exit 1 unless ``--allow-errors`` (a missed goal
alone does not: the table says it). A benchmark that fails to run exits 1 too.

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
Figure = dict[str, Any]


def own_figures(r: dict[str, Any]) -> list[Figure]:
    return list(r.get("figures", []))


# name -> (argv for a full run, argv for --quick, adapter to figures)
BENCHMARKS: dict[str, tuple[list[str], list[str], Callable[[dict[str, Any]], list[Figure]]]] = {
    "bench_runtime": (
        [],
        ["--quick"],
        own_figures,
    ),
    "bench_micro": ([], ["--quick"], own_figures),
    "bench_http": ([], ["--quick"], own_figures),
    "bench_open": (
        ["--rounds", "3", "--duration", "5"],
        ["--rounds", "3", "--duration", "3"],
        own_figures,
    ),
    "bench_vendors": ([], ["--quick"], own_figures),
    "bench_httpsig": ([], ["--quick"], own_figures),
    "bench_push": ([], ["--quick"], own_figures),
    "bench_ws": ([], ["--quick"], own_figures),
    "bench_cluster": ([], ["--quick"], own_figures),  # the cluster engineer's, when present
    "bench_audit_chains": ([], ["--quick"], own_figures),  # audit appends on PostgreSQL
    # The portfolio day (issue 16) at its quick scale in both runs: the full portfolio (50,000
    # residents, 10,000 sockets, six rushes) takes far longer; run bench_portfolio.py for it.
    "bench_portfolio": (["--quick"], ["--quick"], own_figures),
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
    out = [["goal", "figure", "value", "same-run baseline", "ratio", "goal", "errors", "result"]]
    for f in figures:
        result = f.get("verdict") or "FAIL"  # bench.common.verdict: pass, FAIL or info
        errors = int(f.get("errors") or 0) + int(f.get("baseline_errors") or 0)
        rate = f.get("error_rate")
        errors_text = str(errors) + (f" ({rate:.1%})" if errors and rate else "")
        baseline = "" if f["baseline"] is None else f"{fmt(f['baseline'])} ({f['baseline_name']})"
        ratio = "-" if f["ratio"] is None else f"{f['ratio']:.3f}"
        if f.get("ratio_min") is not None and f["ratio"] is not None:
            ratio += f" ({f['ratio_min']:.2f}-{f['ratio_max']:.2f}, {f.get('rounds', '?')}x)"
        value = fmt(f["value"], f["unit"])
        if f.get("p99_ms") is not None:
            value += f", p50/p99 {f['p50_ms']:.0f}/{f['p99_ms']:.0f} ms"
        if f.get("invalid"):
            result += " (" + "; ".join(f["invalid"]) + ")"
        out.append([f["goal"], f["name"], value, baseline, ratio, f["target"], errors_text, result])
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
    parser.add_argument(
        "--allow-errors",
        action="store_true",
        help="exit 0 even when a figure had errors or too few rounds (still marked FAIL)",
    )
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
    invalid = [f"{f['goal']} ({'; '.join(f['invalid'])})" for f in figures if f.get("invalid")]
    if invalid:
        print("FAILED, not trustworthy (errors or too few rounds): " + ", ".join(invalid))
    combined = {
        "date": started.isoformat(timespec="seconds"),
        "commit": commit,
        "python": platform.python_version(),
        "quick": args.quick,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "figures": figures,
        "failed": failed,
        "invalid": invalid,
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
    if failed or (invalid and not args.allow_errors):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
