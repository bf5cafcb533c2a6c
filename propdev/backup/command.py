"""``run.py backup create|verify|restore FILE``: JSON on stdout, a clear error on stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from propdev.backup.errors import BackupError
from propdev.backup.service import create, restore, verify
from propdev.config import Settings
from propdev.security.errors import SecurityError
from propdev.storage import StoreError


def backup_command(settings: Settings, action: str, file: str) -> int:
    """Run one action; exit 0 with a JSON report, or 1 with ``backup <action>: <why>``."""
    path = Path(file)
    try:
        if action == "create":
            report = create(settings, path)
        elif action == "verify":
            report = verify(settings, path)
        else:
            report = restore(settings, path)
    except (BackupError, SecurityError, StoreError) as exc:
        print(f"backup {action}: {exc}", file=sys.stderr)
        print(json.dumps({"ok": False, "error": type(exc).__name__, "detail": str(exc)}))
        return 1
    print(json.dumps(report))
    return 0
