"""Run every benchmark in bench/ one after the other and print their tables.

    .venv/bin/python -m bench [--json-dir DIR]

Each benchmark runs in its own process with its default arguments and writes its JSON to
DIR/<name>.json (a temporary directory unless given).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("bench_runtime", "bench_open")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-dir", type=Path, help="keep each benchmark's JSON here")
    args = parser.parse_args()
    failed = []
    with tempfile.TemporaryDirectory(prefix="propdev-bench-") as tmp:
        out = args.json_dir or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in BENCHMARKS:
            print(f"== {name} ==", flush=True)
            argv = [sys.executable, str(HERE / f"{name}.py"), "--json", str(out / f"{name}.json")]
            code = subprocess.run(argv, cwd=HERE.parent, check=False).returncode
            if code != 0:
                failed.append(name)
                print(f"{name} failed with exit code {code}", flush=True)
            print(flush=True)
    if args.json_dir is not None:
        print(f"JSON in {args.json_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
