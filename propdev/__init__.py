"""propdev: the integration hub of a residential property developer."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ("__version__",)
