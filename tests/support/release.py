"""The next release, for upgrade tests: a copy of this source tree (``run.py`` and ``propdev/``)
with one more migration written into its ``propdev/storage/migrations.py``, as a developer would
add it. A node started from the copy (``running(..., root=...)``) runs that code and nothing of
this tree: the script's directory comes first on ``sys.path``, before the editable install.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from propdev.storage.migrations import MIGRATIONS
from tests.support.processes import REPO

ANCHOR = "\nCURRENT_VERSION = "


def next_version() -> int:
    """The number the next release's migration would take here."""
    return max(v for v, _, _ in MIGRATIONS) + 1


def next_release(
    dest: Path, version: int, description: str, statements: list[str], *, contract: bool = False
) -> Path:
    """Write the next release into ``dest`` (returned): this tree plus migration ``version``,
    an expand step unless ``contract``."""
    if any(v == version for v, _, _ in MIGRATIONS):
        raise ValueError(f"migration {version} exists already")
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "run.py", dest / "run.py")
    shutil.copytree(
        REPO / "propdev", dest / "propdev", ignore=shutil.ignore_patterns("__pycache__")
    )
    source = dest / "propdev" / "storage" / "migrations.py"
    text = source.read_text()
    if text.count(ANCHOR) != 1:
        raise AssertionError(f"{source}: no single {ANCHOR.strip()!r} to add a migration before")
    added = f"\nMIGRATIONS.append(({version}, {description!r}, {statements!r}))\n"
    if contract:
        added += f"CONTRACT_VERSIONS = CONTRACT_VERSIONS | {{{version}}}\n"
    source.write_text(text.replace(ANCHOR, added + ANCHOR))
    return dest
