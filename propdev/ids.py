"""Random ids without a system call each: 128-bit values cut from a pooled ``os.urandom`` draw.

``uuid.uuid4()`` reads 16 bytes from ``os.urandom`` per id: a system call that also lets the
SQLite threads take the GIL in the middle of a request. A ``RandomPool`` draws ``batch`` bytes
at once and hands them out 16 at a time; the bytes are the same kernel randomness. A forked
child draws a pool of its own, so it never repeats its parent's ids.
"""

from __future__ import annotations

import os
import threading
import uuid

__all__ = ("RandomPool", "new_hex_id", "new_uuid")


class RandomPool:
    """128-bit random values from ``os.urandom``, ``batch`` bytes per system call."""

    __slots__ = ("_at", "_batch", "_lock", "_pid", "_pool")

    def __init__(self, batch: int = 4096) -> None:
        if batch < 16 or batch % 16:
            raise ValueError("batch must be a positive multiple of 16")
        self._batch = batch
        self._pool = b""
        self._at = 0
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def take16(self) -> bytes:
        """Sixteen random bytes, never handed out before by this pool."""
        with self._lock:
            at = self._at
            if at >= len(self._pool) or self._pid != os.getpid():
                self._pool = os.urandom(self._batch)
                self._pid = os.getpid()
                at = 0
            self._at = at + 16
            return self._pool[at : at + 16]

    def hex_id(self) -> str:
        """32 random hex digits (a request id)."""
        return self.take16().hex()

    def uuid4(self) -> uuid.UUID:
        """A random (version 4) UUID, as ``uuid.uuid4()`` makes it."""
        return uuid.UUID(bytes=self.take16(), version=4)


_POOL = RandomPool()
new_hex_id = _POOL.hex_id
new_uuid = _POOL.uuid4
