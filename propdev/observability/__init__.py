"""Structured logs (and, as they grow, metrics and traces)."""

from __future__ import annotations

from propdev.observability.logging import configure_logging

__all__ = ("configure_logging",)
