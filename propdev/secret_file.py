"""A secret file written once: the first process to create it wins, the others read its file.

``create_once(path, data)`` writes ``data`` to a temporary file beside ``path`` (mode 0600),
then hard-links it to ``path``; the link fails when another process was first, whose file is
kept. The temporary file is always removed. Callers check ``path.exists()`` first when they
only want to create a missing file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ("create_once",)


def create_once(path: Path, data: bytes, *, dir_mode: int = 0o777) -> None:
    """Create ``path`` holding ``data`` (0600) unless it exists; its directory too."""
    path.parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with contextlib.suppress(FileExistsError):  # another process was first: keep its file
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
