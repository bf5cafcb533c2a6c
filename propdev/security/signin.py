"""Sign-in throttling that one client cannot turn against another.

Failed sign-ins are counted in four places (``propdev.security.throttle`` rules):

================  ==========================  =============================================
bucket            key                         rule
================  ==========================  =============================================
``pair``          (account, address)          back-off: 5 free, then 60 s doubling to 15 min
``account``       account (any address)       back-off: 10 free, then 60 s doubling to 15 min
``address``       address (password logins)   ceiling: ``PROPDEV_AUTH_FAILURES_PER_IP``/5 min
``token``         address (``/oauth/token``)  ceiling: ``PROPDEV_AUTH_FAILURES_PER_IP``/5 min
================  ==========================  =============================================

- A password login waits for the longest of ``pair``, ``account`` and ``address``; a wrong
  password, one-time code or unknown username counts in all three. So the guesser at one
  address is stopped at the pair's back-off, a guesser spread over many addresses at the
  account's, and a spray over many accounts from one address at the address's ceiling --
  which is high (default 200) because behind a carrier-grade NAT or a load balancer many
  people share one address. A correct password for an account not itself in back-off
  signs in whatever other accounts failed from the same address, short of that ceiling.
- The token endpoint's failures (a bogus refresh token or code, a client that does not
  authenticate) count only in ``token``, which gates only the token endpoint: refresh
  failures never stop a password login, and password failures never stop a refresh.
- A successful login clears its ``pair`` and ``account``, never an address's count.

Keys are plain strings; ``RedisThrottle`` hashes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from propdev.security.throttle import (
    Backoff,
    Ceiling,
    FailureThrottle,
    LocalThrottle,
    RedisThrottle,
)

PAIR = Backoff(free=5, base=60.0, cap=900.0)
ACCOUNT = Backoff(free=10, base=60.0, cap=900.0)
ADDRESS_WINDOW = 300.0

Scope = Literal["account", "address"]


@dataclass(frozen=True, slots=True)
class Wait:
    """Seconds to wait before trying again (0: now), and whose failures caused it."""

    seconds: float
    scope: Scope = "account"

    def __bool__(self) -> bool:
        return self.seconds > 0


def _pair(account: str, address: str) -> str:
    return f"{account}\x00{address}"


class SignInThrottle:
    """The four buckets of one authorization server (or one cluster, through Redis)."""

    def __init__(
        self,
        *,
        pair: FailureThrottle,
        account: FailureThrottle,
        address: FailureThrottle,
        token: FailureThrottle,
    ) -> None:
        self.pair = pair
        self.account = account
        self.address = address
        self.token = token

    @classmethod
    def local(cls, per_address: int, *, clock: Callable[[], float] = time.time) -> SignInThrottle:
        """This process's buckets; ``per_address`` is ``PROPDEV_AUTH_FAILURES_PER_IP``."""
        ceiling = Ceiling(per_address, ADDRESS_WINDOW)
        return cls(
            pair=LocalThrottle(PAIR, clock=clock),
            account=LocalThrottle(ACCOUNT, clock=clock),
            address=LocalThrottle(ceiling, clock=clock),
            token=LocalThrottle(ceiling, clock=clock),
        )

    @classmethod
    def shared(
        cls,
        redis: Any,
        *,
        prefix: str,
        per_address: int,
        clock: Callable[[], float] | None = None,
    ) -> SignInThrottle:
        """Buckets in a cluster's Redis under ``prefix`` (e.g. ``{propdev}:auth:``): ``pair:``,
        ``acct:``, ``ip:`` and ``token:``; ``clock`` is for tests (None: Redis's time)."""
        ceiling = Ceiling(per_address, ADDRESS_WINDOW)

        def bucket(name: str, rule: Backoff | Ceiling) -> RedisThrottle:
            return RedisThrottle(redis, rule, prefix=f"{prefix}{name}:", clock=clock)

        return cls(
            pair=bucket("pair", PAIR),
            account=bucket("acct", ACCOUNT),
            address=bucket("ip", ceiling),
            token=bucket("token", ceiling),
        )

    async def login_wait(self, account: str, address: str) -> Wait:
        """How long a password login for ``account`` from ``address`` must wait."""
        by_address = await self.address.retry_after(address)
        by_account = max(
            await self.pair.retry_after(_pair(account, address)),
            await self.account.retry_after(account),
        )
        if by_address > by_account:
            return Wait(by_address, "address")
        return Wait(by_account, "account")

    async def login_failed(self, account: str, address: str) -> Wait:
        """Count a failed login; returns the wait it causes (0 while failures are free)."""
        pair = await self.pair.failed(_pair(account, address))
        by_account = await self.account.failed(account)
        by_address = await self.address.failed(address)
        if by_address > max(pair, by_account):
            return Wait(by_address, "address")
        return Wait(max(pair, by_account), "account")

    async def login_succeeded(self, account: str, address: str) -> None:
        await self.pair.succeeded(_pair(account, address))
        await self.account.succeeded(account)

    async def token_wait(self, address: str) -> Wait:
        """How long requests to the token endpoint from ``address`` must wait."""
        return Wait(await self.token.retry_after(address), "address")

    async def token_failed(self, address: str) -> None:
        """Count a failed token request (a bad code or refresh token, a bad client)."""
        await self.token.failed(address)
