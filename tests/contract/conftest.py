"""The contract tests run against the same real node as the end-to-end tests."""

from __future__ import annotations

from tests.e2e.conftest import node

__all__ = ["node"]
