"""The static API key our node presents to a vendor's API (``X-Api-Key``).

One key per partner, shared by the node and the simulator through the data dir:
``<data dir>/partners/<partner_id>/api-key`` (mode 0600), generated on first use. Against a real
vendor, write the key the vendor issued into that file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def api_key_path(data_dir: Path, partner_id: str) -> Path:
    return data_dir / "partners" / partner_id / "api-key"


def vendor_api_key(data_dir: Path, partner_id: str = "simulator", *, name: str = "api-key") -> str:
    """The API key for ``partner_id``, created (atomically, once) if the data dir has none.

    ``name`` picks another secret of the same partner (e.g. ``webhook-secret``).
    """
    path = api_key_path(data_dir, partner_id).with_name(name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
        try:
            with contextlib.suppress(FileExistsError):  # another process was first: keep its key
                os.link(tmp, path)
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"{path} is empty")
    return key
