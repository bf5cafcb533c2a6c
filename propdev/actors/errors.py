"""Errors of the actor runtime."""

from __future__ import annotations


class ActorError(Exception):
    """Base class of actor runtime errors."""


class AskTimeout(ActorError, TimeoutError):
    """Raised when an ask gets no reply within its timeout."""


class MailboxFull(ActorError):
    """Raised when a message is told to an actor whose mailbox is at capacity."""


class ActorStoppedError(ActorError):
    """Raised when a message goes to an actor, or a system, that has stopped."""


class UnknownActorError(ActorError, KeyError):
    """Raised when an address names no registered kind or no active actor."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidAddressError(ActorError, ValueError):
    """Raised when a string cannot be parsed as an address."""
