"""Rate limits: GCRA per key behind one ``Limiter`` interface, in-process or shared in Redis.

A ``Rule`` is a rate per second with a burst. GCRA (the generic cell rate algorithm, as in
redis-cell) keeps one number per key -- the theoretical arrival time -- so a check and its
update are one atomic step: a dict write here, one Lua script in Redis.

The middleware applies, for every request except health and metrics:

- ``client``: the token's subject when authenticated, else the client's address
  (``PROPDEV_RATE_LIMIT`` per second, bursts of twice that);
- ``ip``: the client's address whoever the caller (five times the client rate: many app users
  can share one NAT address);
- ``route``: stricter rules for costly or sensitive routes -- the token and login endpoints,
  password change and reset and account activation (``AUTH_PATHS``) per caller, door opens
  per subject.

A refusal is 429 with ``Retry-After`` (whole seconds, at least 1) and ``RateLimit-Policy``.
``PROPDEV_RATE_LIMIT=0`` turns all of it off (benchmarks). Brute force on credentials is
throttled separately, by failures (``propdev.security.signin``).

The client's address is ``request.remote`` as ``propdev.http.client_address`` set it: the TCP
peer, or the client a trusted proxy names.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from propdev.http.errors import TooManyRequestsError

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Where credentials or one-time codes are tried: the stricter ``auth`` rule.
AUTH_PATHS = frozenset(
    {
        "/oauth/token",
        "/oauth/authorize",
        "/api/v1/me/password",
        "/api/v1/password-reset",
        "/api/v1/password-reset/confirm",
        "/api/v1/activation",
    }
)
_EPSILON = 1e-9  # seconds: float error of the summed intervals, far below any real gap


@dataclass(frozen=True, slots=True)
class Rule:
    """``rate`` requests per second, with bursts of ``burst``."""

    name: str
    rate: float
    burst: float

    @property
    def interval(self) -> float:
        return 1.0 / self.rate


class Decision(NamedTuple):
    allowed: bool
    retry_after: float  # seconds until one request would be allowed (0 when allowed)


class Limiter(Protocol):
    """Takes one request for ``key`` under ``rule``."""

    async def hit(self, key: str, rule: Rule) -> Decision: ...


def gcra(tat: float | None, now: float, rule: Rule) -> tuple[Decision, float | None]:
    """One GCRA step: (decision, new theoretical arrival time or None if unchanged)."""
    interval = rule.interval
    tat = max(tat if tat is not None else now, now)
    allow_at = tat - (rule.burst - 1) * interval
    if allow_at - now > _EPSILON:  # not ``now < allow_at``: sums of 0.2 s would cut a burst short
        return Decision(False, allow_at - now), None
    return Decision(True, 0.0), tat + interval


class LocalLimiter:
    """This process's GCRA state; at most ``max_keys`` keys (least recently used forgotten)."""

    def __init__(
        self, *, max_keys: int = 200_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._tat: OrderedDict[str, float] = OrderedDict()

    def hit_now(self, key: str, rule: Rule) -> Decision:
        now = self.clock()
        full = f"{rule.name}:{key}"
        decision, tat = gcra(self._tat.get(full), now, rule)
        if tat is not None:
            self._tat[full] = tat
        self._tat.move_to_end(full) if full in self._tat else None
        while len(self._tat) > self.max_keys:
            self._tat.popitem(last=False)
        return decision

    async def hit(self, key: str, rule: Rule) -> Decision:
        return self.hit_now(key, rule)


# KEYS[1] the key; ARGV: interval (ms), burst, now (ms, from the Redis server's clock if 0).
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - (burst - 1) * interval
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now + interval))
return {1, 0}
"""


class RedisLimiter:
    """GCRA shared by every node through one Lua script (atomic on the Redis server).

    Time is the Redis server's, so nodes' clocks do not matter. When Redis cannot be reached
    the decision falls back to ``fallback`` (this node's limiter): fail-open with a local limit.
    """

    def __init__(self, redis: Any, *, prefix: str = "propdev:rl:", fallback: Limiter | None = None):
        self.redis = redis
        self.prefix = prefix
        self.fallback = fallback if fallback is not None else LocalLimiter()
        self._script = redis.register_script(_GCRA_LUA)

    async def hit(self, key: str, rule: Rule) -> Decision:
        try:
            allowed, wait_ms = await self._script(
                keys=[f"{self.prefix}{rule.name}:{key}"],
                args=[rule.interval * 1000.0, rule.burst, 0],
            )
        except Exception as exc:  # redis down: degrade to the local limit, loudly
            log.warning("rate_limit_redis_unavailable", error=type(exc).__name__)
            return await self.fallback.hit(key, rule)
        return Decision(bool(int(allowed)), float(wait_ms) / 1000.0)


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules the middleware applies, derived from ``PROPDEV_RATE_LIMIT``."""

    client: Rule
    ip: Rule
    auth: Rule  # /oauth/token and the login form, per source address
    open: Rule  # door and barrier opens, per subject

    @classmethod
    def from_rate(cls, rate: float) -> Policy:
        """Every burst is at least one request: a low rate spaces requests out, it never
        refuses them all (GCRA with a burst under 1 would)."""

        def rule(name: str, per_second: float, burst: float) -> Rule:
            return Rule(name, per_second, max(1.0, burst))

        return cls(
            client=rule("client", rate, 2 * rate),
            ip=rule("ip", 5 * rate, 10 * rate),
            auth=rule("auth", rate / 2, rate),
            open=rule("open", rate / 5, rate),
        )


def _route_rule(request: web.Request, policy: Policy) -> Rule | None:
    path = request.path
    if request.method == "POST" and path in AUTH_PATHS:
        return policy.auth
    if request.method == "POST" and path.startswith("/api/v1/access-points/"):
        return policy.open
    return None


def rate_limit_middleware(
    *, rate: float, limiter: Limiter, subject: Callable[[web.Request], str | None]
) -> Middleware:
    """Per client, per IP and per route; ``subject`` reads the authenticated caller, if any."""
    policy = Policy.from_rate(rate)

    @web.middleware
    async def impl(request: web.Request, handler: Handler) -> web.StreamResponse:
        if rate <= 0 or request.path in UNLIMITED_PATHS:
            return await handler(request)
        ip = request.remote or "unknown"
        sub = subject(request)
        checks: list[tuple[str, Rule]] = [
            (f"sub:{sub}" if sub else f"ip:{ip}", policy.client),
            (ip, policy.ip),
        ]
        route = _route_rule(request, policy)
        if route is not None:
            checks.append((sub or ip, route))
        for key, rule in checks:
            decision = await limiter.hit(key, rule)
            if not decision.allowed:
                log.warning("rate_limited", rule=rule.name, route=request.path)
                raise TooManyRequestsError(
                    "Slow down.",
                    headers={
                        "Retry-After": str(max(1, math.ceil(decision.retry_after))),
                        "RateLimit-Policy": f'"{rule.name}";q={int(rule.burst)};w=1',
                    },
                )
        return await handler(request)

    return impl
