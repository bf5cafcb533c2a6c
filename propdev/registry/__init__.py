"""Which node owns which actor, cluster membership, and the bus between them.

The embedded default is one node that owns everything, with an in-process bus.
"""

from __future__ import annotations

from propdev.registry.bus import Bus, Handler, InProcessBus

__all__ = ("Bus", "Handler", "InProcessBus")
