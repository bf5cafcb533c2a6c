"""The data dir's part of a backup: every file in it except what is named to stay out.

What stays out is an explicit list, not an allow-list, so key material that a later version
keeps in the data dir (a checkpoint key, a partner's secret) is backed up without a change
here: the **master key** (the default ``keys/master.key`` and ``PROPDEV_MASTER_KEY_FILE`` when
it lies inside), the **SQLite store** when it lies inside (it is backed up as the store, from a
consistent snapshot), the backup file being written, and restores in progress. Symbolic links
and other non-regular files are skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from propdev.backup.errors import TargetNotEmptyError

STAGING_PREFIX = ".propdev-restore-"
MASTER_KEY_DEFAULT = Path("keys") / "master.key"


def master_key_paths(data_dir: Path, master_key_file: Path | None) -> set[Path]:
    """The master key's possible files (resolved): never backed up."""
    paths = {(data_dir / MASTER_KEY_DEFAULT).resolve()}
    if master_key_file is not None:
        paths.add(master_key_file.resolve())
    return paths


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def key_material(data_dir: Path, excluded: Iterable[Path]) -> list[Path]:
    """The data dir's regular files, relative to it, sorted, without ``excluded`` (resolved
    paths) and restores in progress."""
    root = data_dir.resolve()
    skip = {p.resolve() for p in excluded}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(STAGING_PREFIX))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path in skip or path.is_symlink() or not path.is_file():
                continue
            found.append(path.relative_to(root))
    return found


def check_empty(data_dir: Path, allowed: Iterable[Path]) -> None:
    """Raise ``TargetNotEmptyError`` unless ``data_dir`` is missing or holds nothing but
    ``allowed`` files (the master key, an empty store) and directories leading to them."""
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise TargetNotEmptyError(f"the data dir {data_dir} is not a directory")
    occupied = key_material(data_dir, allowed)
    if occupied:
        shown = ", ".join(str(p) for p in occupied[:5]) + (", …" if len(occupied) > 5 else "")
        raise TargetNotEmptyError(
            f"the data dir {data_dir} is not empty: {len(occupied)} files ({shown})"
        )


@contextlib.contextmanager
def staging_dir(data_dir: Path) -> Iterator[Path]:
    """A private directory inside ``data_dir`` (same file system: renames are atomic),
    removed with everything in it when the block ends."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for leftover in data_dir.glob(STAGING_PREFIX + "*"):  # a restore killed midway
        shutil.rmtree(leftover, ignore_errors=True)
    path = data_dir / f"{STAGING_PREFIX}{os.getpid()}"
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def install(staged: Path, data_dir: Path, files: Iterable[Path]) -> Iterator[list[Path]]:
    """Move the staged ``files`` (relative paths) into ``data_dir``, each by a rename that
    refuses to replace a file; yield what was placed. If the block raises, every file placed
    and every directory made is removed again."""
    placed: list[Path] = []
    made: list[Path] = []
    try:
        for relative in files:
            target = data_dir / relative
            missing = [p for p in reversed(target.parents) if _inside(p, data_dir)]
            for directory in missing:
                if not directory.exists():
                    directory.mkdir(mode=0o700)
                    made.append(directory)
            os.link(staged / relative, target)  # FileExistsError instead of overwriting
            placed.append(target)
        yield placed
    except BaseException:
        for path in reversed(placed):
            path.unlink(missing_ok=True)
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
