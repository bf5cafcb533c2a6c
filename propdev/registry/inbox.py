"""Messages between nodes: each node's inbox is a Redis Stream read through a consumer group.

``ask(node, target, message, timeout)`` adds the message to the node's inbox stream (queued on
the ``Pipeliner``: a burst is one round trip) and waits for the reply that comes back, with the
same correlation id, on the asker's reply stream. The owner acknowledges an inbox entry once
it has handled it and queued the reply, so an entry taken by a node that dies before handling
it stays pending and is handled again when that node id comes back (if the asker still waits).

A node that stops (``stop_accepting``) reads its inbox to the end: it stops its reader, handles
what is still unread (a drained node answers ``MOVED``, so the asker re-routes) and waits for
the replies, before it leaves the membership; what arrives after that is the sweeper's.

A dead node's inbox is swept by the lowest live member (``sweep``, every ``SWEEP_EVERY``
seconds): its pending and unread entries are claimed and handled here (served if this node
holds the target's shard, else ``MOVED``, so the asker re-routes; an entry past its deadline or
unreadable is dropped), then its inbox and reply streams are deleted, in one script that
checks that the node is still not a member and that nothing arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from propdev.registry.errors import RemoteAskTimeout, WireError
from propdev.registry.pipeline import Pipeliner
from propdev.registry.wire import (
    decode_message,
    decode_reply,
    encode_message,
    encode_reply,
    pack,
    unpack,
)

log = structlog.get_logger()

GROUP = "owner"
INBOX_MAXLEN = 100_000
REPLIES_MAXLEN = 10_000
READ_COUNT = 256
BLOCK_MS = 1000
RECONNECT = 0.2
SWEEP_EVERY = 5.0
SCAN_EVERY = 12  # sweeps: a SCAN for inbox streams nobody registered, once a minute
JANITOR = "janitor"  # the consumer name under which a sweeper claims a dead node's entries

# KEYS: members zset, inboxes set, the dead node's inbox, its replies. ARGV: node id, the
# inbox's last entry id when the sweeper began taking it over ("" if none). Deletes only if the
# node is not a live member, no entry is pending and none arrived since. 1 deleted, 0 not yet.
_DELETE_IF_DONE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = redis.call('ZSCORE', KEYS[1], ARGV[1])
if lease and tonumber(lease) > now then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local groups = redis.call('XINFO', 'GROUPS', KEYS[3])
  for _, g in ipairs(groups) do
    for i = 1, #g, 2 do
      if g[i] == 'pending' and tonumber(g[i + 1]) > 0 then return 0 end
    end
  end
  local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
  if #last > 0 and last[1][1] ~= ARGV[2] then return 0 end
end
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""

Serve = Callable[[str, object, float], Awaitable[object]]
"""(target, message, seconds left) -> reply; runs on the owner."""
Members = Callable[[], tuple[str, ...]]
"""The live node ids, sorted (``Membership.members``)."""


class Inbox:
    def __init__(
        self,
        redis: Redis,
        pipeliner: Pipeliner,
        *,
        namespace: str,
        node_id: str,
        serve: Serve,
        members: Members | None = None,
    ) -> None:
        self._redis = redis
        self._pipeliner = pipeliner
        self._namespace = namespace
        self.node_id = node_id
        self._inbox = self.inbox_of(node_id)
        self._replies = self.replies_of(node_id)
        self._serve = serve
        self._members = members
        self._inboxes = f"{namespace}:inboxes"  # every node id that ever had an inbox
        self._members_key = f"{namespace}:members"
        self._delete_if_done = redis.register_script(_DELETE_IF_DONE)
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._handling: set[asyncio.Task[None]] = set()
        self._accepting = True
        self._closing = False
        self.asked = 0
        self.served = 0
        self.swept = 0  # dead nodes' inboxes deleted

    def inbox_of(self, node_id: str) -> str:
        return f"{self._namespace}:inbox:{node_id}"

    def replies_of(self, node_id: str) -> str:
        return f"{self._namespace}:replies:{node_id}"

    async def start(self) -> None:
        # Replies are read from the stream's last entry now, never from "$": a read from "$"
        # sees only what is added while it blocks, so a reply landing between two empty reads
        # would be lost and its ask would time out.
        last: Any = await self._redis.xrevrange(self._replies, count=1)
        replies_from = _text(last[0][0]) if last else "0-0"
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_inbox(), name="inbox"),
            loop.create_task(self._read_replies(replies_from), name="replies"),
        ]
        if self._members is not None:
            self._tasks.append(loop.create_task(self._sweep_dead(), name="inbox-janitor"))

    async def stop_accepting(self) -> None:
        """Stop reading the inbox without leaving an entry in it unanswered: the reader ends
        after its blocking read (at most ``BLOCK_MS``), the entries still unread are taken and
        handled (``serve`` answers ``MOVED`` for a shard this node no longer holds, and the
        asker re-routes), and then everything taken is waited for (bounded) and its reply and
        acknowledgement sent. Entries that arrive later are the sweeper's, once this node has
        left the membership."""
        self._accepting = False
        reader = next((t for t in self._tasks if t.get_name() == "inbox"), None)
        if reader is not None:
            _done, running = await asyncio.wait({reader}, timeout=BLOCK_MS / 1000 + 0.5)
            for task in running:
                task.cancel()
        taken = await self._take_unread()
        if self._handling:
            await asyncio.wait(self._handling, timeout=10)
        with contextlib.suppress(Exception):
            await self._pipeliner.send("PING")  # the replies and acks, queued before it, went out
        if taken:
            log.info("inbox_flushed", entries=taken)

    async def _take_unread(self) -> int:
        """Take and handle what the inbox holds unread; how many entries."""
        taken = 0
        try:
            await self._ensure_group()
            while True:
                found: Any = await self._redis.xreadgroup(
                    GROUP, self.node_id, {self._inbox: ">"}, count=READ_COUNT
                )
                entries = [e for _stream, batch in found or [] for e in batch]
                if not entries:
                    return taken
                for entry_id, fields in entries:
                    self._spawn(self._handle(entry_id, fields))
                taken += len(entries)
        except (redis_errors.RedisError, OSError) as exc:
            log.warning("inbox_unreachable", error=str(exc))
            return taken

    async def close(self) -> None:
        """Stop reading: the read loops end after their blocking read (at most ``BLOCK_MS``),
        since a read cancelled in the middle leaves its Redis connection unclosed; whatever
        is still running after that is cancelled."""
        self._accepting = False
        self._closing = True
        tasks, self._tasks = self._tasks, []
        if tasks:
            _done, running = await asyncio.wait(tasks, timeout=BLOCK_MS / 1000 + 0.5)
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RemoteAskTimeout("node stopping"))

    # -- the asking side ------------------------------------------------------------------

    async def ask(self, node: str, target: str, message: object, timeout: float) -> object:  # noqa: ASYNC109 - the ask's own deadline travels with it
        """Ask ``target`` on ``node``; its reply, ``RemoteAskTimeout`` after ``timeout``."""
        correlation = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = future
        self.asked += 1
        envelope = {
            "c": correlation,
            "r": self.node_id,
            "t": target,
            "m": encode_message(message),
            "d": time.time() + timeout,
        }
        try:
            async with asyncio.timeout(timeout):
                await self._pipeliner.send(
                    "XADD",
                    self.inbox_of(node),
                    "MAXLEN",
                    "~",
                    INBOX_MAXLEN,
                    "*",
                    "p",
                    pack(envelope),
                )
                reply = await future
        except TimeoutError:
            raise RemoteAskTimeout(
                f"no reply from {target} on {node} within {timeout:g}s"
            ) from None
        finally:
            self._waiting.pop(correlation, None)
        return decode_reply(reply)

    async def _read_replies(self, last: str) -> None:
        while not self._closing:
            try:
                found: Any = await self._redis.xread(
                    {self._replies: last}, count=READ_COUNT, block=BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except (redis_errors.RedisError, OSError) as exc:
                log.warning("replies_unreachable", error=str(exc))
                await asyncio.sleep(RECONNECT)
                continue
            for _stream, entries in found or []:
                for entry_id, fields in entries:
                    last = entry_id
                    try:
                        body = unpack(fields[b"p"])
                    except (WireError, KeyError):
                        continue
                    future = self._waiting.get(body.get("c", ""))
                    if future is not None and not future.done():
                        future.set_result(body["v"])

    # -- the owning side ------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._inbox, GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        else:  # a new inbox (a start, or Redis lost its data): known to the sweepers
            await self._redis.sadd(self._inboxes, self.node_id)

    async def _read_inbox(self) -> None:
        pending_first = True
        while not self._closing and self._accepting:
            try:
                await self._ensure_group()
                found: Any = await self._redis.xreadgroup(
                    GROUP,
                    self.node_id,
                    {self._inbox: "0" if pending_first else ">"},
                    count=READ_COUNT,
                    block=None if pending_first else BLOCK_MS,
                )
            except asyncio.CancelledError:
                raise
            except (redis_errors.RedisError, OSError) as exc:
                log.warning("inbox_unreachable", error=str(exc))
                await asyncio.sleep(RECONNECT)
                continue
            entries = [e for _stream, batch in found or [] for e in batch]
            if pending_first and not entries:
                pending_first = False
                continue
            for entry_id, fields in entries:
                self._spawn(self._handle(entry_id, fields))
            if pending_first:
                # Pending entries were handed out again; from now on, new ones only.
                pending_first = False

    def _spawn(self, handling: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(handling)
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)
        return task

    async def _handle(
        self, entry_id: bytes, fields: dict[bytes, bytes], inbox: str | None = None
    ) -> None:
        inbox = inbox or self._inbox
        try:
            envelope = unpack(fields[b"p"])
            message = decode_message(envelope["m"])
        except (WireError, KeyError) as exc:
            log.warning("inbox_entry_dropped", entry=entry_id, error=str(exc))
            await self._ack(entry_id, inbox)
            return
        left = float(envelope["d"]) - time.time()
        if left <= 0:
            await self._ack(entry_id, inbox)  # the asker gave up already
            return
        try:
            reply = await self._serve(envelope["t"], message, left)
        except Exception as exc:  # the asker gets the failure, as with a local ask
            reply = exc
        self.served += 1
        body = pack({"c": envelope["c"], "v": encode_reply(reply)})
        with contextlib.suppress(Exception):
            self._pipeliner.send_nowait(
                "XADD",
                self.replies_of(envelope["r"]),
                "MAXLEN",
                "~",
                REPLIES_MAXLEN,
                "*",
                "p",
                body,
            )
        await self._ack(entry_id, inbox)

    async def _ack(self, entry_id: bytes, inbox: str) -> None:
        with contextlib.suppress(Exception):
            self._pipeliner.send_nowait("XACK", inbox, GROUP, entry_id)

    # -- dead nodes' inboxes --------------------------------------------------------------

    async def _sweep_dead(self) -> None:
        """Every ``SWEEP_EVERY`` seconds, on the lowest live member only: ``sweep``."""
        assert self._members is not None
        sweeps = 0
        while not self._closing:
            await asyncio.sleep(SWEEP_EVERY)
            members = self._members()
            if not members or members[0] != self.node_id:
                continue
            try:
                await self.sweep(members, scan=sweeps % SCAN_EVERY == 0)
                sweeps += 1
            except asyncio.CancelledError:
                raise
            except (redis_errors.RedisError, OSError) as exc:
                log.warning("inbox_sweep_failed", error=str(exc))

    async def sweep(self, members: tuple[str, ...], *, scan: bool = True) -> list[str]:
        """Handle what the inboxes of nodes not in ``members`` hold, then delete them; the
        node ids whose streams were deleted. The inboxes are those registered when they were
        made and, with ``scan``, any other stream named like one (an ask may have made a
        stream for a node that died before reading it)."""
        await self._redis.sadd(self._inboxes, self.node_id)
        known = {_text(m) for m in await self._redis.smembers(self._inboxes)}
        if scan:
            prefix = self.inbox_of("")
            async for key in self._redis.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
                known.add(_text(key).removeprefix(prefix))
        dead = sorted(n for n in known if n not in members and n != self.node_id)
        deleted: list[str] = []
        for node in dead:
            inbox = self.inbox_of(node)
            last = await self._take_over(inbox)
            done = await self._delete_if_done(
                keys=[
                    self._members_key,
                    self._inboxes,
                    inbox,
                    self.replies_of(node),
                ],
                args=[node, last],
            )
            if done:
                deleted.append(node)
                self.swept += 1
                log.info("inbox_swept", dead_node=node)
        return deleted

    async def _take_over(self, inbox: str) -> str:
        """Claim a dead node's pending entries and read its unread ones, handle each here, and
        wait until they are handled and acknowledged. Returns the stream's last entry id as it
        was before ("" if none): the deletion is refused if anything came after it."""
        if not await self._redis.exists(inbox):
            return ""
        newest: Any = await self._redis.xrevrange(inbox, count=1)
        last = _text(newest[0][0]) if newest else ""
        with contextlib.suppress(redis_errors.ResponseError):  # BUSYGROUP: it exists
            await self._redis.xgroup_create(inbox, GROUP, id="0")
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        cursor: Any = "0-0"
        while True:  # pending: taken by the dead node, never acknowledged
            found: Any = await self._redis.xautoclaim(
                inbox, GROUP, JANITOR, min_idle_time=0, start_id=cursor, count=READ_COUNT
            )
            cursor = found[0]
            entries.extend((e[0], e[1]) for e in found[1] if e[1] is not None)
            if _text(cursor) == "0-0":
                break
        while True:  # never delivered to it
            fresh: Any = await self._redis.xreadgroup(
                GROUP, JANITOR, {inbox: ">"}, count=READ_COUNT
            )
            batch = [e for _stream, got in fresh or [] for e in got]
            if not batch:
                break
            entries.extend(batch)
        if entries:
            log.info("inbox_taken_over", inbox=inbox, entries=len(entries))
            await asyncio.wait([self._spawn(self._handle(i, f, inbox)) for i, f in entries])
            await self._pipeliner.send("PING")  # the acks, queued before it, have gone out
        return last


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
