"""How one-time codes reach people: a ``Notifier`` (an SMS or e-mail provider behind it).

The node's default, ``OutboxNotifier``, delivers nothing: it appends each message as one JSON
line to a file under the data dir (``outbox.jsonl``, mode 0600), where a developer -- or a
test -- reads the code. A deployment passes its own ``Notifier`` (an SMS gateway, say).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

RESET = "password_reset"
ACTIVATION = "activation"


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one person: ``code`` and what it is for, with a ready ``text``."""

    user_id: str
    username: str
    phone: str  # "" when the account has none: a provider may fall back to another channel
    purpose: str  # ``password_reset``
    code: str
    expires_at: float
    text: str


class Notifier(Protocol):
    """Delivers messages to people; raises (any ``Exception``) when it could not."""

    async def send(self, message: Message) -> None: ...


class OutboxNotifier:
    """The development notifier: each message is a JSON line in ``path``, nothing is sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def send(self, message: Message) -> None:
        line = json.dumps(asdict(message), ensure_ascii=False, sort_keys=True) + "\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(line)

    def messages(self) -> list[Message]:
        """Every message in the outbox, oldest first (for tools and tests)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [Message(**json.loads(line)) for line in lines if line.strip()]
