"""What the deployment files may name: run.py's verbs, the PROPDEV_* settings, the files."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from propdev.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "propdev"
SETTING = re.compile(r"\bPROPDEV_[A-Z0-9_]+\b")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def verbs() -> dict[str, set[str]]:
    """``run.py``'s verbs, each with its sub-verbs (empty when it has none)."""
    return {name: set(_subcommands(sub)) for name, sub in _subcommands(_parser()).items()}


def settings() -> set[str]:
    """The PROPDEV_* variables ``Settings.from_env`` reads."""
    source = (ROOT / "propdev" / "config" / "settings.py").read_text(encoding="utf-8")
    return set(SETTING.findall(source))


def check_command(args: list[Any], where: str) -> None:
    """``args`` (after ``python run.py``) start with a real verb and, if it has them, sub-verb."""
    known = verbs()
    assert args, f"{where}: no command"
    verb = str(args[0])
    assert verb in known, f"{where}: run.py has no verb {verb!r} (has {sorted(known)})"
    if known[verb]:
        assert len(args) > 1 and str(args[1]) in known[verb], (
            f"{where}: run.py {verb} needs one of {sorted(known[verb])}, got {args[1:2]}"
        )


def unknown_settings(text: str) -> set[str]:
    return set(SETTING.findall(text)) - settings()
