"""Errors of the registry: the bus, membership, placement and messaging between nodes."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of registry errors."""


class BusUnavailableError(RegistryError, ConnectionError):
    """Raised when Redis cannot be reached for a message that must arrive."""


class NotOwnerError(RegistryError):
    """Raised when this node does not (or no longer) hold the lease of an actor's shard."""


class FencedError(NotOwnerError):
    """Raised when the store has seen a newer epoch of the shard than the one this node holds."""


class RemoteAskTimeout(RegistryError, TimeoutError):
    """Raised when a node that was asked did not reply in time."""


class RemoteError(RegistryError):
    """Raised when the remote actor failed to handle an ask (its error, by name and text)."""


class WireError(RegistryError, ValueError):
    """Raised when a message cannot be encoded for, or decoded from, the wire."""
