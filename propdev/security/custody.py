"""Key custody: where the master key may live.

In development (the default) the master key may be the file ``<data dir>/keys/master.key``,
made on first start. With ``PROPDEV_ENV=production`` it must come from outside the data volume
-- ``PROPDEV_MASTER_KEY`` (from a secret store) or ``PROPDEV_MASTER_KEY_FILE`` outside the data
dir (the settings refuse one inside) -- and a master key file left in the data dir is refused
too: whoever takes the volume (or a copy of it) must not also take the key.
"""

from __future__ import annotations

from pathlib import Path

from propdev.config.settings import Settings
from propdev.security.errors import SecurityError

DEFAULT_MASTER_KEY = Path("keys") / "master.key"


class CustodyError(SecurityError):
    """Raised when the master key is kept where the settings' environment forbids it."""


def check_custody(settings: Settings) -> None:
    """Raise ``CustodyError`` when, in production, a master key file lies in the data dir."""
    if not settings.production:
        return
    stray = settings.data_dir / DEFAULT_MASTER_KEY
    if stray.exists():
        raise CustodyError(
            f"PROPDEV_ENV=production: a master key file lies on the data volume ({stray}); "
            "move it to a secret store (PROPDEV_MASTER_KEY or PROPDEV_MASTER_KEY_FILE outside "
            "the data dir) and delete it there"
        )
