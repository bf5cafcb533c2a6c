"""Circuit state shared by a cluster's nodes: a partner's circuit opens once for the cluster.

Embedded (one node), each ``CallGuard`` keeps its circuit in memory (``propdev.partners.breaker``,
pybreaker). In a cluster the node gives its guards one ``RedisCircuits``
(``CallGuard.share``); each partner's circuit then lives in one Redis hash (``state``,
``failures``, ``opened_at``), changed by one Lua script, atomically, in the Redis server's time:

- a failure adds one to ``failures`` (the hash expires ``window`` seconds after the last one, so
  stale failures do not add up over days); at the breaker's ``failures`` setting the circuit
  opens, with ``opened_at`` now;
- a success while closed ends the run of failures (sent only when this node knows of some: the
  common success costs no Redis write);
- while open every node refuses calls (``CircuitOpenError``) until ``reset`` seconds after
  ``opened_at``; then one node at a time probes: the trial lock (``SET NX PX``, expiring after
  ``trial_ttl``) goes to one node, whose trial's success closes the circuit for everyone and
  whose failure opens it again; the other nodes keep refusing.

Why not pybreaker's ``CircuitRedisStorage``: it is written against the synchronous ``redis``
client (a blocking round trip per call on the event loop), it counts with separate
read-modify-write commands (two nodes' failures can be lost or open the circuit twice), and it
has no notion of one trial for the cluster. pybreaker stays the local breaker and the fallback.

Each node keeps a view of every circuit it uses (``CircuitView``): admission reads the view, in
memory, so a call never waits on Redis unless it would be a trial. The view is updated by the
answers of this node's own script calls, by a message on the bus when another node changes a
circuit's state (``circuit:<partner>``), and by a refresh every ``refresh`` seconds (pub/sub
can lose a message). Every Redis call is bounded by ``op_timeout``; when one fails the
circuit falls back to the node's local breaker (``partner_breaker_shared_unavailable`` is
logged) until a refresh succeeds again (``partner_breaker_shared_back``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger()

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
CHANNEL = "circuit:"
"""Bus channel prefix of ``circuit:<partner>``: a circuit changed state somewhere."""

Listener = Callable[[str, str], None]
"""``(old_state, new_state)`` of one circuit as this node sees it."""


class Notifier(Protocol):
    """The bus as the circuits use it (``propdev.registry.Bus``)."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    def subscribe(
        self,
        prefix: str,
        handler: Callable[[str, dict[str, Any]], Awaitable[None]],
        *,
        local_only: bool = False,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class CircuitSettings:
    """What the shared script needs of a breaker's settings, passed with each change (so that
    settings changed at run time apply at the next call)."""

    failures: int
    reset: float
    trial_ttl: float
    window: float = 600.0


@dataclass(slots=True)
class CircuitView:
    """One circuit as this node last saw it in Redis."""

    stored: str = CLOSED  # closed or open; half-open is open past ``open_until``
    failures: int = 0
    open_until: float = 0.0  # this node's clock
    reported: str = CLOSED  # the state listeners last heard


# KEYS[1] the circuit's hash, KEYS[2] its trial lock.
# ARGV: op (read|fail|ok|trial), failures to open, reset (ms), window (ms), trial ttl (ms),
#       now (ms; 0: the Redis server's clock), 1 if the call was the trial.
# Returns {state, failures, ms until a trial may go, 1 if this call won the trial}.
_CIRCUIT_LUA = """
local op = ARGV[1]
local fail_max = tonumber(ARGV[2])
local reset = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local trial = ARGV[7] == '1'
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local h = KEYS[1]
local state = redis.call('HGET', h, 'state') or 'closed'
local failures = tonumber(redis.call('HGET', h, 'failures') or '0')
local opened = tonumber(redis.call('HGET', h, 'opened_at') or now)
local function open_view(won)
  return {'open', failures, math.max(0, math.ceil(opened + reset - now)), won}
end
if op == 'fail' then
  if state == 'open' then
    if trial then
      opened = now
      redis.call('HSET', h, 'opened_at', now)
      redis.call('DEL', KEYS[2])
    end
    return open_view(0)
  end
  failures = redis.call('HINCRBY', h, 'failures', 1)
  if failures >= fail_max then
    opened = now
    redis.call('HSET', h, 'state', 'open', 'opened_at', now)
    redis.call('PERSIST', h)
    return open_view(0)
  end
  redis.call('PEXPIRE', h, window)
  return {'closed', failures, 0, 0}
elseif op == 'ok' then
  if state == 'open' and not trial then
    return open_view(0)
  end
  redis.call('DEL', h, KEYS[2])
  return {'closed', 0, 0, 0}
elseif op == 'trial' then
  if state ~= 'open' then
    return {'closed', failures, 0, 0}
  end
  if opened + reset > now then
    return open_view(0)
  end
  if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ttl) then
    return open_view(1)
  end
  return open_view(0)
end
if state == 'open' then
  return open_view(0)
end
return {'closed', failures, 0, 0}
"""


class RedisCircuits:
    """The node's circuits in the cluster's Redis, and its view of each.

    ``clock`` is this node's (monotonic seconds); ``server_clock``, if given, is sent to the
    script as "now" in place of the Redis server's time (tests move both).
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str,
        bus: Notifier | None = None,
        refresh: float = 1.0,
        op_timeout: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        server_clock: Callable[[], float] | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.refresh_every = refresh
        self.op_timeout = op_timeout
        self.clock = clock
        self.server_clock = server_clock
        self.healthy = True
        self._bus = bus
        self._script = redis.register_script(_CIRCUIT_LUA)
        self._views: dict[str, CircuitView] = {}
        self._settings: dict[str, CircuitSettings] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._task: asyncio.Task[None] | None = None
        self._origin = uuid.uuid4().hex  # our own announcements come back: not read again
        if bus is not None:
            bus.subscribe(CHANNEL, self._heard)

    # -- the view ------------------------------------------------------------------------

    def track(self, name: str, settings: CircuitSettings, on_change: Listener) -> CircuitView:
        """Follow the circuit ``name`` (refreshed with ``settings``); ``on_change`` hears its
        state changes as this node sees them. A partner's gateway rebuilt after a change of
        its registration tracks it again: its listener replaces the old gateway's."""
        self._settings[name] = settings
        self._listeners[name] = [on_change]
        return self._views.setdefault(name, CircuitView())

    def configure(self, name: str, settings: CircuitSettings) -> None:
        """New settings for the circuit ``name`` (they apply from its next change)."""
        self._settings[name] = settings

    def state(self, name: str) -> str:
        """``closed``, ``open`` or ``half-open`` (open, and a trial may go)."""
        view = self._views.get(name)
        if view is None or view.stored == CLOSED:
            return CLOSED
        return OPEN if self.clock() < view.open_until else HALF_OPEN

    def view(self, name: str) -> CircuitView:
        return self._views.setdefault(name, CircuitView())

    def retry_after(self, name: str) -> float:
        """Seconds until a trial may go (0 unless open)."""
        view = self.view(name)
        return max(0.0, view.open_until - self.clock()) if view.stored == OPEN else 0.0

    def settle(self, name: str) -> None:
        """Tell the listeners if the state changed since they last heard (time alone turns
        open into half-open)."""
        view = self.view(name)
        now = self.state(name)
        if now == view.reported:
            return
        old, view.reported = view.reported, now
        for listener in self._listeners.get(name, ()):
            listener(old, now)

    # -- changes (each raises on a Redis failure; the caller falls back) ----------------

    async def failed(self, name: str, *, trial: bool) -> CircuitView:
        """Count a failed call (``trial``: the trial's, which opens the circuit again)."""
        return (await self._run(name, "fail", trial=trial))[0]

    async def succeeded(self, name: str, *, trial: bool) -> CircuitView:
        """Count a successful call: the run of failures ends; the trial's closes the circuit."""
        return (await self._run(name, "ok", trial=trial))[0]

    async def take_trial(self, name: str) -> bool:
        """True if this node won the trial call of an open circuit whose wait is over."""
        return (await self._run(name, "trial", trial=False))[1]

    async def read(self, name: str) -> CircuitView:
        return (await self._run(name, "read", trial=False))[0]

    async def _run(self, name: str, op: str, *, trial: bool) -> tuple[CircuitView, bool]:
        settings = self._settings.get(name) or CircuitSettings(5, 30.0, 5.0)
        key = f"{self.prefix}cb:{name}"
        now = 0 if self.server_clock is None else int(self.server_clock() * 1000)
        async with asyncio.timeout(self.op_timeout):
            state, failures, wait_ms, took = await self._script(
                keys=[key, f"{key}:trial"],
                args=[
                    op,
                    settings.failures,
                    int(settings.reset * 1000),
                    int(settings.window * 1000),
                    max(1, int(settings.trial_ttl * 1000)),
                    now,
                    1 if trial else 0,
                ],
            )
        self._back()
        view = self.view(name)
        before = view.stored
        view.stored = state.decode() if isinstance(state, bytes) else str(state)
        view.failures = int(failures)
        view.open_until = self.clock() + int(wait_ms) / 1000.0 if view.stored == OPEN else 0.0
        if op in ("fail", "ok") and (view.stored != before or trial):
            await self._announce(name)  # the other nodes read it now, not at their refresh
        self.settle(name)
        return view, bool(int(took))

    # -- health, refresh, the bus --------------------------------------------------------

    def unavailable(self, name: str, error: BaseException) -> None:
        """A Redis call for ``name`` failed: the caller falls back to its local breaker."""
        if self.healthy:
            log.warning(
                "partner_breaker_shared_unavailable", partner=name, error=type(error).__name__
            )
        self.healthy = False

    def _back(self) -> None:
        if not self.healthy:
            log.info("partner_breaker_shared_back")
        self.healthy = True

    async def refresh(self) -> None:
        """Read every followed circuit again (one failure marks the store unavailable)."""
        for name in list(self._settings):
            try:
                await self.read(name)
            except Exception as exc:  # redis down: the local breakers decide meanwhile
                self.unavailable(name, exc)
                return

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._refreshing(), name="circuits-refresh")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refreshing(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_every)
            await self.refresh()

    async def _announce(self, name: str) -> None:
        if self._bus is None:
            return
        try:
            await self._bus.publish(f"{CHANNEL}{name}", {"partner": name, "from": self._origin})
        except Exception as exc:  # the others' refresh catches up
            log.warning("partner_breaker_announce_failed", partner=name, error=type(exc).__name__)

    async def _heard(self, channel: str, message: dict[str, Any]) -> None:
        name = channel[len(CHANNEL) :]
        if name not in self._settings or message.get("from") == self._origin:
            return
        try:
            await self.read(name)
        except Exception as exc:
            self.unavailable(name, exc)
