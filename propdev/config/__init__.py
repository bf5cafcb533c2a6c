"""Settings, read once from the environment (and an optional TOML file) and passed down."""

from __future__ import annotations

from propdev.config.settings import SIGNING_ALGORITHMS, PartnerSigning, Settings, SettingsError

__all__ = ("SIGNING_ALGORITHMS", "PartnerSigning", "Settings", "SettingsError")
