"""Deferred: a reply an actor gives later, after its handler has returned to the mailbox.

An actor that must wait for something slow to answer an ask (a vendor's asynchronous
confirmation) should not wait in its handler: the mailbox would wait too, and the message it
waits for may be queued behind it. Instead its handler returns a ``Deferred``: the cell goes on
with the next message, and the asker gets its reply when the actor calls ``resolve`` (or
``fail``), typically from a later message it sends itself (Akka's "stash the sender, reply
later", Orleans' not-awaited task). The reply stays the actor's duty:

- the ask's own timeout still bounds the asker's wait;
- a handler returning a ``Deferred`` to a tell has nobody to answer (the value is dropped);
- what the actor still owes when it stops (graceful stop, passivation, restart, crash) is
  failed with ``ActorStoppedError`` once ``on_stop``/``on_failure`` had its chance to answer
  in the domain's words; and an actor owing replies is not passivated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Deferred(Generic[T]):
    """A reply to come; resolve it (or fail it) once, from the actor that returned it."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<Deferred {'done' if self.done else 'pending'}>"

    @property
    def done(self) -> bool:
        return self._future.done()

    def resolve(self, value: T) -> None:
        """Answer the asker with ``value``; a second answer is ignored."""
        if not self._future.done():
            self._future.set_result(value)

    def fail(self, exc: BaseException) -> None:
        """Answer the asker with ``exc`` raised; a second answer is ignored."""
        if not self._future.done():
            self._future.set_exception(exc)

    def when_done(self, callback: Callable[[Deferred[T]], None]) -> None:
        """Call ``callback(self)`` once answered (at once, on the loop, if it already is)."""
        self._future.add_done_callback(lambda _: callback(self))

    def forward(self, reply: asyncio.Future[Any]) -> None:
        """Copy the answer, once given, to an ask's ``reply`` (unless that is done already:
        the asker gave up)."""

        def copy(source: asyncio.Future[T]) -> None:
            error = None if source.cancelled() else source.exception()  # retrieved either way
            if reply.done():
                return
            if source.cancelled():
                reply.cancel()
            elif error is not None:
                reply.set_exception(error)
            else:
                reply.set_result(source.result())

        self._future.add_done_callback(copy)


__all__ = ("Deferred",)
