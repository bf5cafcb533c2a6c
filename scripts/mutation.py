"""Mutation testing of the critical paths (``scripts/mutate``; see docs/mutation.md).

Each group below names the modules to mutate and the fast unit tests meant to catch them (their
SQLite and in-process variants: ``PROPDEV_TEST_SKIP_BACKENDS``, read by tests/conftest.py; never
the e2e suite). Each group runs mutmut in a scratch
directory of its own under ``var/mutate/<group>/`` (symlinks to ``propdev`` and ``tests`` and a
copy of ``pyproject.toml`` with a ``[tool.mutmut]`` section written here), within its share of a
total time budget: what a group leaves unspent goes to the groups after it, and a group that runs
out is interrupted and its unchecked mutants reported as such. The results go to a JSON and a
Markdown report and a summary is printed.

Score per module: (killed + timed out) / (run - equivalent), where "run" counts every mutant
that was tested (killed, timed out, survived, suspicious, no tests) and "equivalent" the
survivors listed in ``scripts/mutation-equivalents.toml`` with the reason no test can kill them,
and those that only change the letter case of SQL (``sql_case_only``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "mutate"
EQUIVALENTS = ROOT / "scripts" / "mutation-equivalents.toml"
TARGET = 0.90


@dataclass(frozen=True)
class Group:
    """Modules mutated together and the fast tests run against them."""

    modules: tuple[str, ...]
    tests: tuple[str, ...]
    weight: float = 1.0  # share of the budget, relative to the others
    # parametrized variants left out (tests/conftest.py): PostgreSQL and Redis, unless the
    # module's own code talks to the backend (the throttle's Lua scripts: the local Redis)
    skip_backends: tuple[str, ...] = ("postgresql", "redis")


GROUPS: dict[str, Group] = {
    "opening": Group(
        ("propdev/access/opening.py", "propdev/access/outcome.py"),
        (
            "tests/unit/access/test_opening.py",
            "tests/unit/access/test_opening_pipeline.py",
            "tests/unit/access/test_outcome.py",
        ),
        weight=3.0,
    ),
    "audit": Group(
        ("propdev/storage/audit.py",),
        ("tests/unit/storage/test_audit.py", "tests/unit/storage/test_audit_chain.py"),
    ),
    "commands": Group(
        ("propdev/storage/commands.py",),
        ("tests/unit/storage/test_events_and_commands.py", "tests/unit/storage/test_commands.py"),
    ),
    "tokens": Group(
        ("propdev/security/tokens.py", "propdev/registry/revocations.py"),
        (
            "tests/unit/security/test_tokens.py",
            "tests/unit/security/test_token_claims.py",
            "tests/unit/security/test_access_token_revocation.py",
            "tests/unit/registry/test_revocations.py",
        ),
        weight=2.0,
    ),
    "partner-auth": Group(
        ("propdev/http/partner_auth.py", "propdev/partners/signing.py"),
        ("tests/unit/http/test_partner_auth.py", "tests/unit/partners/test_signing.py"),
    ),
    "ratelimit": Group(
        ("propdev/http/ratelimit.py",),
        (
            "tests/unit/http/test_ratelimit.py",
            "tests/unit/http/test_ratelimit_rules.py",
            "tests/unit/http/test_shared_limits.py",
        ),
    ),
    "throttle": Group(
        ("propdev/security/throttle.py",),
        ("tests/unit/security/test_throttle.py", "tests/unit/security/test_throttle_rules.py"),
        weight=1.5,
        skip_backends=("postgresql",),
    ),
    "breaker": Group(
        ("propdev/partners/breaker.py", "propdev/partners/guard.py"),
        (
            "tests/unit/partners/test_gateway.py",
            "tests/unit/partners/test_gateway_latency.py",
            "tests/unit/partners/test_breaker.py",
        ),
        weight=1.5,
    ),
}

# mutmut's exit codes, as in mutmut.stats.status_by_exit_code (mutmut 3.8)
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    2: "interrupted",
    None: "not checked",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "type check",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}
UNTESTED = {"not checked", "interrupted", "skipped"}
CAUGHT = {"killed", "timeout", "type check", "segfault"}


@dataclass
class ModuleResult:
    module: str
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> status
    equivalent: dict[str, str] = field(default_factory=dict)  # mutant name -> reason
    diffs: dict[str, str] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for s in self.statuses.values() if s == status)

    @property
    def run(self) -> int:
        return sum(1 for s in self.statuses.values() if s not in UNTESTED)

    @property
    def caught(self) -> int:
        return sum(1 for s in self.statuses.values() if s in CAUGHT)

    @property
    def survivors(self) -> list[str]:
        return sorted(
            name for name, s in self.statuses.items() if s not in UNTESTED and s not in CAUGHT
        )

    @property
    def equivalent_survivors(self) -> list[str]:
        return [name for name in self.survivors if name in self.equivalent]

    @property
    def score(self) -> float | None:
        denominator = self.run - len(self.equivalent_survivors)
        return self.caught / denominator if denominator else None

    def as_dict(self) -> dict[str, object]:
        return {
            "module": self.module,
            "total": len(self.statuses),
            "run": self.run,
            "killed": self.count("killed"),
            "timeout": self.count("timeout"),
            "survived": len(self.survivors),
            "equivalent": len(self.equivalent_survivors),
            "not_checked": len(self.statuses) - self.run,
            "score": self.score,
            "survivors": [
                {
                    "mutant": name,
                    "status": self.statuses[name],
                    "equivalent": self.equivalent.get(name),
                    "diff": self.diffs.get(name, ""),
                }
                for name in self.survivors
            ],
        }


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def load_equivalents() -> dict[str, str]:
    if not EQUIVALENTS.exists():
        return {}
    data = tomllib.loads(EQUIVALENTS.read_text("utf-8"))
    return {name: str(entry["reason"]) for name, entry in data.get("equivalent", {}).items()}


_SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|AND|JOIN|ORDER BY|SET|VALUES)\b", re.I
)
_CASE_SENSITIVE = re.compile(r"'[^']*'|:\w+|\"")  # SQL string literals, :parameters, quotes
SQL_CASE = (
    "only the letter case of SQL keywords or unquoted identifiers changed: both SQLite and "
    "PostgreSQL read them case-insensitively, and a result column is named as declared"
)


def sql_case_only(diff: str) -> bool:
    """The mutant changes only the case of SQL outside its literals and parameters."""
    lines = diff.splitlines()
    old = [line[1:] for line in lines if line.startswith("-") and not line.startswith("---")]
    new = [line[1:] for line in lines if line.startswith("+") and not line.startswith("+++")]
    if len(old) != 1 or len(new) != 1 or old == new or not _SQL.search(old[0]):
        return False

    def fold(line: str) -> tuple[str, list[str]]:
        kept = _CASE_SENSITIVE.findall(line)
        return _CASE_SENSITIVE.sub("\x00", line).lower(), kept

    return fold(old[0]) == fold(new[0])


def mutmut_section(group: Group) -> str:
    quoted = ", ".join(json.dumps(m) for m in group.modules)
    selection = ", ".join(json.dumps(a) for a in existing(group.tests))
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["propdev"]\n'
        f"only_mutate = [{quoted}]\n"
        f"pytest_add_cli_args_test_selection = [{selection}]\n"
        # a mutant that turns a wait into a hang fails its test instead of eating the budget
        'pytest_add_cli_args = ["--timeout=30", "-p", "no:cacheprovider"]\n'
        "use_git_change_detection = false\n"
    )


def existing(tests: tuple[str, ...]) -> list[str]:
    return [t for t in tests if (ROOT / t).exists()]


def prepare(name: str, group: Group, *, fresh: bool) -> Path:
    work = WORK / name
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for link in ("propdev", "tests"):
        target = work / link
        if not target.is_symlink():
            target.symlink_to(ROOT / link)
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    (work / "pyproject.toml").write_text(pyproject + mutmut_section(group), "utf-8")
    return work


def meta_statuses(name: str, group: Group) -> dict[str, str]:
    """mutmut's verdicts in ``var/mutate/<group>/mutants/**.meta``: mutant -> status."""
    statuses = {}
    for module in group.modules:
        meta = WORK / name / "mutants" / (module + ".meta")
        if meta.exists():
            codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
            statuses.update({k: STATUS.get(v, "suspicious") for k, v in codes.items()})
    return statuses


def saved_statuses(name: str, group: Group) -> dict[str, str]:
    """The verdicts this script kept from the group's last run (mutmut's when there are none).

    mutmut forgets every verdict when the test selection changes (a new test file), so a
    recheck merges its new verdicts into these instead of trusting mutmut's cache.
    """
    path = WORK / name / "results.json"
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text("utf-8"))
        return saved
    return meta_statuses(name, group)


def unsettled(statuses: dict[str, str]) -> list[str]:
    """Mutants that no test caught, or that were not run."""
    return sorted(k for k, v in statuses.items() if v not in CAUGHT)


def run_group(
    name: str, group: Group, *, seconds: float, jobs: int, mode: str, names: list[str]
) -> bool:
    """Runs mutmut for one group; False when the time ran out before it finished.

    ``mode``: "fresh" (every mutant, from scratch), "keep" (mutmut's cache: only mutants
    without a result), "recheck" (the previous run's survivors and unrun mutants again, e.g.
    after adding tests; the source must not have changed since).
    """
    work = prepare(name, group, fresh=mode == "fresh")
    if mode == "recheck" and not names:
        return True
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PROPDEV_TEST_SKIP_BACKENDS"] = ",".join(group.skip_backends)  # tests/conftest.py
    log = (work / "mutmut.log").open("w")
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *names]
    process = subprocess.Popen(
        cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        process.wait(timeout=max(seconds, 1.0))
        return True
    except subprocess.TimeoutExpired:
        print(f"  {name}: time budget spent, stopping mutmut (pid {process.pid})")
        os.killpg(process.pid, signal.SIGINT)  # mutmut stops its workers and keeps its results
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return False
    finally:
        log.close()


def collect(
    name: str,
    group: Group,
    equivalents: dict[str, str],
    previous: dict[str, str] | None,
    rechecked: list[str],
) -> list[ModuleResult]:
    """Per module results; after a recheck, the previous verdicts of the mutants not rechecked
    (or not reached within the budget) stand."""
    work = WORK / name
    statuses = meta_statuses(name, group)
    if previous is not None:
        again = set(rechecked)
        statuses = {
            k: statuses[k]
            if k in again and statuses.get(k, "not checked") not in UNTESTED
            else previous[k]
            for k in previous
        }
    (work / "results.json").write_text(json.dumps(statuses, indent=1, sort_keys=True), "utf-8")
    results = []
    for module in group.modules:
        result = ModuleResult(module)
        prefix = module_name(module) + "."
        result.statuses = {k: v for k, v in statuses.items() if k.startswith(prefix)}
        result.equivalent = {k: v for k, v in equivalents.items() if k in result.statuses}
        result.diffs = diffs(work, result.survivors)
        for mutant, diff in result.diffs.items():
            if mutant not in result.equivalent and sql_case_only(diff):
                result.equivalent[mutant] = SQL_CASE
        results.append(result)
    return results


def diffs(work: Path, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    from mutmut.configuration import reset_config
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    out = {}
    reset_config()
    with contextlib.chdir(work):
        for mutant in names:
            try:
                out[mutant] = get_diff_for_mutant(mutant)
            except Exception as error:  # a report without one diff beats no report
                out[mutant] = f"(no diff: {error!r})"
    reset_config()
    return out


def markdown(results: list[ModuleResult], meta: dict[str, object]) -> str:
    lines = [
        "# Mutation testing report",
        "",
        f"mutmut {meta['mutmut']}, budget {meta['budget_min']} min, {meta['jobs']} worker(s), "
        f"took {meta['elapsed_min']} min; groups: {', '.join(meta['groups'])}"  # type: ignore[arg-type]
        + (f"; unfinished: {', '.join(meta['unfinished'])}" if meta["unfinished"] else ""),  # type: ignore[arg-type]
        "",
        "| module | mutants | run | killed | timed out | surviving | equivalent | not run "
        "| score |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        d = r.as_dict()
        score = "n/a" if r.score is None else f"{r.score:.1%}"
        lines.append(
            f"| `{r.module}` | {d['total']} | {d['run']} | {d['killed']} | {d['timeout']} | "
            f"{d['survived']} | {d['equivalent']} | {d['not_checked']} | {score} |"
        )
    for r in results:
        if not r.survivors:
            continue
        lines += ["", f"## {r.module}", ""]
        for mutant in r.survivors:
            why = r.equivalent.get(mutant)
            label = f"equivalent: {why}" if why else r.statuses[mutant]
            lines += [
                f"- `{mutant}` ({label})",
                "",
                "```diff",
                r.diffs.get(mutant, "").strip(),
                "```",
                "",
            ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/mutate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "groups",
        nargs="*",
        metavar="GROUP",
        help=f"groups to run (default: all): {', '.join(GROUPS)}",
    )
    parser.add_argument(
        "--budget", type=float, default=45.0, help="total minutes for all groups (default 45)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="mutants tested at once (default 1: the machine is shared)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=WORK / "report.md",
        help="Markdown report; the JSON goes beside it (default var/mutate/report.md)",
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--keep",
        action="store_true",
        help="reuse the previous run's results (mutmut tests only mutants without one)",
    )
    how.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write the report of the groups' last results",
    )
    how.add_argument(
        "--recheck",
        action="store_true",
        help="test again only the previous run's survivors and unrun mutants (after new tests)",
    )
    parser.add_argument("--list", action="store_true", help="print the groups and exit")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        print(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    if args.list:
        for name, group in GROUPS.items():
            print(f"{name:14} {' '.join(group.modules)}\n{'':14} tests: {' '.join(group.tests)}")
        return 0
    try:
        import mutmut
    except ImportError:
        print("mutmut is not installed: scripts/install installs the dev extra", file=sys.stderr)
        return 2
    names = args.groups or list(GROUPS)
    mode = "fresh"
    if args.report_only:
        mode = "report"
    elif args.recheck:
        mode = "recheck"
    elif args.keep:
        mode = "keep"
    equivalents = load_equivalents()
    started = time.monotonic()
    deadline = started + args.budget * 60
    unfinished: list[str] = []
    results: list[ModuleResult] = []
    for i, name in enumerate(names):
        group = GROUPS[name]
        left = deadline - time.monotonic()
        weights = sum(GROUPS[n].weight for n in names[i:])
        share = left * group.weight / weights
        print(f"{name}: {', '.join(group.modules)} (up to {share / 60:.1f} min)", flush=True)
        previous = saved_statuses(name, group) if mode in ("recheck", "report") else None
        again = unsettled(previous) if previous is not None else []
        if mode == "recheck":
            print(f"  rechecking {len(again)} mutants", flush=True)
        if mode == "report":
            again = []
        if mode == "report":
            finished = True
        else:
            finished = share >= 30 and run_group(
                name, group, seconds=share, jobs=args.jobs, mode=mode, names=again
            )
        if not finished:
            unfinished.append(name)
        for r in collect(name, group, equivalents, previous, again):
            results.append(r)
            score = "n/a" if r.score is None else f"{r.score:.1%}"
            print(
                f"  {r.module}: {r.caught}/{r.run - len(r.equivalent_survivors)} caught, "
                f"{len(r.survivors)} surviving ({len(r.equivalent_survivors)} equivalent), "
                f"{len(r.statuses) - r.run} not run: {score}",
                flush=True,
            )
    meta: dict[str, object] = {
        "mutmut": getattr(mutmut, "__version__", "?"),
        "budget_min": args.budget,
        "jobs": args.jobs,
        "elapsed_min": round((time.monotonic() - started) / 60, 1),
        "groups": names,
        "unfinished": unfinished,
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(markdown(results, meta), "utf-8")
    args.report.with_suffix(".json").write_text(
        json.dumps(
            {**meta, "modules": [r.as_dict() for r in results]}, indent=2, ensure_ascii=False
        ),
        "utf-8",
    )
    print(f"\nreport: {args.report} (and {args.report.with_suffix('.json').name})")
    low = [r.module for r in results if r.score is not None and r.score < TARGET]
    print(
        f"below {TARGET:.0%}: {', '.join(low)}" if low else f"every module at {TARGET:.0%} or more"
    )
    return 1 if low or unfinished else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
