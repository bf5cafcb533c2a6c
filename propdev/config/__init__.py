"""Settings, read once from the environment (and an optional TOML file) and passed down."""

from __future__ import annotations

from propdev.config.settings import Settings, SettingsError

__all__ = ("Settings", "SettingsError")
