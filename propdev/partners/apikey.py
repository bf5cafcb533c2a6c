"""The static API key our node presents to a vendor's API (``X-Api-Key``).

One key per partner, shared by the node and the simulator through the data dir:
``<data dir>/partners/<partner_id>/api-key`` (mode 0600), generated on first use. Against a real
vendor, write the key the vendor issued into that file.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from propdev.secret_file import create_once


def api_key_path(data_dir: Path, partner_id: str) -> Path:
    return data_dir / "partners" / partner_id / "api-key"


def vendor_api_key(data_dir: Path, partner_id: str = "simulator", *, name: str = "api-key") -> str:
    """The API key for ``partner_id``, created (atomically, once) if the data dir has none.

    ``name`` picks another secret of the same partner (e.g. ``webhook-secret``).
    """
    path = api_key_path(data_dir, partner_id).with_name(name)
    if not path.exists():
        create_once(path, (secrets.token_urlsafe(32) + "\n").encode())
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"{path} is empty")
    return key
