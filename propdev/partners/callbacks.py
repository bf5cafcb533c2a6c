"""The simulator's callbacks to our node: ordered, batched, signed, over mTLS, retried.

``CallbackSender(partner_id, callback_url, ...)`` queues events (``send``), and one task posts
them in order, batched, to ``<callback_url>/partner/v1/events`` with the partner's client
certificate and a ``client_credentials`` token it gets (and renews) from
``<callback_url>/oauth/token`` with the same certificate. Each body is signed
(``propdev.partners.signing``). A failed delivery (no connection, 5xx, 429, 401 after a fresh
token) is retried with jittered exponential backoff, ``max_attempts`` times, with the same
``webhook-id``; a 4xx refusal is not retried; either way the batch is then dropped and logged.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog

from propdev.partners.signing import sign

log = structlog.get_logger()

EVENTS_PATH = "/partner/v1/events"
TOKEN_PATH = "/oauth/token"
MAX_BATCH = 100
MAX_QUEUE = 10_000
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class CallbackSender:
    """Delivers one partner's events to our node."""

    def __init__(
        self,
        *,
        partner_id: str,
        callback_url: str,
        ssl_context: ssl.SSLContext,
        secret: str,
        max_attempts: int = 8,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        timeout: float = 10.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.partner_id = partner_id
        self.url = callback_url.rstrip("/")
        self._ssl = ssl_context
        self._secret = secret
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._timeout = timeout
        self._jitter = jitter
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_QUEUE)
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[str, float] | None = None
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped = 0

    async def send(self, event: dict[str, Any]) -> None:
        """Queue ``event`` (the simulator's ``callback``); the oldest is dropped when full."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            log.warning("callback_queue_full", partner=self.partner_id)
        self._queue.put_nowait(event)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def drain(self) -> None:
        """Wait until every event queued so far was delivered or dropped."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._deliver(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=4),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (1-based): full jitter over an exponential cap."""
        cap = min(self._max_delay, self._base_delay * float(2 ** (attempt - 1)))
        return cap * (0.5 + self._jitter() / 2)

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": batch}).encode()
        message_id = f"msg_{uuid.uuid4().hex}"
        outcome = "not tried"
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.backoff(attempt - 1))
            try:
                status = await self._post(message_id, body)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                outcome = repr(exc)
                continue
            if status == 202:
                self.delivered += len(batch)
                return
            outcome = f"HTTP {status}"
            if status == 401:
                self._token = None  # renew and retry
            elif status not in RETRYABLE:
                break
        self.dropped += len(batch)
        log.warning("callback_dropped", partner=self.partner_id, events=len(batch), outcome=outcome)

    async def _post(self, message_id: str, body: bytes) -> int:
        token = await self._access_token()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **sign(self._secret, message_id, body),
        }
        async with self._client().post(self.url + EVENTS_PATH, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def _access_token(self) -> str:
        now = time.monotonic()
        if self._token is not None and self._token[1] > now:
            return self._token[0]
        form = {"grant_type": "client_credentials", "client_id": self.partner_id}
        async with self._client().post(self.url + TOKEN_PATH, data=form) as resp:
            answer = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(answer, dict):
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message=str(answer)
                )
        token = str(answer["access_token"])
        lifetime = float(answer.get("expires_in", 60))
        self._token = (token, now + max(1.0, lifetime - 30))
        return token
