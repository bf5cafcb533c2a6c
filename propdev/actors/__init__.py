"""Actors: virtual actors addressed by `kind:id`, with bounded mailboxes, tell and ask.

Supervision (restarts, escalation, dead letters) comes from `propdev.supervision`.
"""

from __future__ import annotations

from propdev.actors.actor import Actor, ActorCell, ActorState, Factory, Kind, Runtime
from propdev.actors.address import Address
from propdev.actors.deferred import Deferred
from propdev.actors.errors import (
    ActorError,
    ActorStoppedError,
    AskTimeout,
    InvalidAddressError,
    MailboxFull,
    UnknownActorError,
)
from propdev.actors.mailbox import Mailbox, MailboxStatistics
from propdev.actors.system import ActorRef, ActorSystem

__all__ = (
    "Actor",
    "ActorCell",
    "ActorError",
    "ActorRef",
    "ActorState",
    "ActorStoppedError",
    "ActorSystem",
    "Address",
    "AskTimeout",
    "Deferred",
    "Factory",
    "InvalidAddressError",
    "Kind",
    "Mailbox",
    "MailboxFull",
    "MailboxStatistics",
    "Runtime",
    "UnknownActorError",
)
