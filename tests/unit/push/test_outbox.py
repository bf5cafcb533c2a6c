"""The outbox and its sender, on both stores, against the three stand-ins: rows written with
the event, held until released or withheld, retried with back-off, taken over after a lease."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from propdev.push import (
    HOLD,
    LEASE,
    ApnsProvider,
    FcmProvider,
    Outbox,
    PushProvider,
    PushSender,
    PushTokens,
    ServiceAccount,
    WebPushProvider,
    backoff,
    client_context,
    sync_enqueue,
)
from propdev.storage import Database
from tests.support.push_standins import ApnsStandIn, FcmStandIn, StandInCA, WebPushStandIn

USER = "u-anna"
FCM_TOKEN = "fcm-" + "A" * 140
APNS_TOKEN = "cd" * 32


class Clock:
    def __init__(self) -> None:
        self.at = time.time()

    def __call__(self) -> float:
        return self.at


@dataclass
class Rig:
    db: Database
    clock: Clock
    tokens: PushTokens
    providers: dict[str, PushProvider]
    fcm: FcmStandIn
    apns: ApnsStandIn
    webpush: WebPushStandIn
    events: int = 0

    def sender(self, node: str = "n1", **kw: object) -> PushSender:
        outbox = Outbox(self.db, node_id=node, clock=self.clock)
        return PushSender(outbox, self.providers, **kw)  # type: ignore[arg-type]

    async def event(self, kind: str = "access.automatic", user: str = USER) -> int:
        self.events += 1
        event = {
            "id": self.events,
            "type": kind,
            "access_point_id": "ap-parking",
            "command_id": None,
            "occurred_at": self.clock(),
            "plate_hint": "C77",
        }
        await self.db.unit(lambda c: sync_enqueue(c, event, user_id=user, now=self.clock()))
        return self.events


@pytest.fixture
async def rig(
    db: Database,
    tmp_path: Path,
    ca: StandInCA,
    fcm: FcmStandIn,
    apns: ApnsStandIn,
    webpush: WebPushStandIn,
    vapid_key: ec.EllipticCurvePrivateKey,
) -> AsyncIterator[Rig]:
    clock = Clock()
    await db.execute(
        "INSERT INTO users (id, username, password_hash, roles, created_at) "
        "VALUES (:u, 'anna', 'x', 'resident', 0)",
        u=USER,
    )
    providers: dict[str, PushProvider] = {
        "fcm": FcmProvider(
            ServiceAccount.from_file(fcm.service_account(tmp_path / "sa.json")),
            base_url=fcm.url,
            ssl_context=client_context(ca.ca_file),
        ),
        "apns": ApnsProvider(
            apns.key,
            key_id=apns.key_id,
            team_id=apns.team_id,
            topic=apns.topic,
            base_url=apns.url,
            ssl_context=client_context(ca.ca_file, http2=True),
        ),
        "webpush": WebPushProvider(vapid_key, ssl_context=client_context(ca.ca_file)),
    }
    tokens = PushTokens(db, clock=clock)
    await tokens.register(USER, {"platform": "fcm", "token": FCM_TOKEN})
    await tokens.register(USER, {"platform": "apns", "token": APNS_TOKEN})
    sub = webpush.subscribe()
    await tokens.register(USER, {"platform": "webpush", "subscription": sub.to_json()})
    yield Rig(db, clock, tokens, providers, fcm, apns, webpush)
    for provider in providers.values():
        await provider.close()


async def pending(db: Database) -> list[dict[str, object]]:
    return [dict(r) for r in await db.fetch_all("SELECT * FROM push_outbox ORDER BY id")]


async def test_a_released_event_reaches_every_device_once_with_one_collapse_id(rig: Rig) -> None:
    sender = rig.sender()
    event_id = await rig.event()
    assert len(await pending(rig.db)) == 3
    assert await sender.run_once() == 0  # held: the publishing node has not decided yet
    assert await sender.outbox.release(event_id) == 3
    assert await sender.run_once() == 3
    assert await pending(rig.db) == []
    assert (sender.pushed, sender.failed, sender.dropped) == (3, 0, 0)
    fcm, apns, web = rig.fcm.received, rig.apns.received, rig.webpush.received
    assert [len(fcm), len(apns), len(web)] == [1, 1, 1]
    assert fcm[0].body["android"]["collapse_key"] == "ev1"
    assert apns[0].headers["apns-collapse-id"] == "ev1"
    assert web[0].headers["Topic"] == "ev1"
    assert web[0].body["title"] == "Шлагбаум открыт для вашей машины"  # the default: ru


async def test_an_event_a_socket_received_is_withheld_and_never_sent(rig: Rig) -> None:
    sender = rig.sender()
    event_id = await rig.event()
    assert await sender.outbox.withhold(event_id) == 3
    rig.clock.at += HOLD + 1
    assert await sender.run_once() == 0
    assert rig.fcm.received == rig.apns.received == rig.webpush.received == []


async def test_undecided_rows_fall_due_on_their_own_after_the_hold(rig: Rig) -> None:
    sender = rig.sender()
    await rig.event()  # the publishing node died before it decided
    assert await sender.run_once() == 0
    rig.clock.at += HOLD
    assert await sender.run_once() == 3
    assert sender.pushed == 3


async def test_a_500_is_retried_after_an_exponential_back_off(rig: Rig) -> None:
    sender = rig.sender()
    await rig.db.execute("DELETE FROM push_tokens WHERE platform <> 'fcm'")
    rig.fcm.fail_next.extend([500, 503])
    await sender.outbox.release(await rig.event())
    assert await sender.run_once() == 1
    (row,) = await pending(rig.db)
    assert (row["attempts"], row["claimed_by"]) == (1, None)
    assert row["due_at"] == pytest.approx(rig.clock() + backoff(1))
    rig.clock.at += backoff(1)
    assert await sender.run_once() == 1  # the 503
    (row,) = await pending(rig.db)
    assert row["attempts"] == 2 and row["due_at"] == pytest.approx(rig.clock() + backoff(2))
    rig.clock.at += backoff(2) - 0.01
    assert await sender.run_once() == 0  # not yet
    rig.clock.at += 0.01
    assert await sender.run_once() == 1
    assert (sender.failed, sender.pushed) == (2, 1) and await pending(rig.db) == []
    assert [r.token for r in rig.fcm.received] == [FCM_TOKEN]


async def test_a_token_the_provider_reports_gone_is_deleted(rig: Rig) -> None:
    sender = rig.sender()
    rig.apns.gone.add(APNS_TOKEN)
    rig.fcm.gone.add(FCM_TOKEN)
    await sender.outbox.release(await rig.event())
    assert await sender.run_once() == 3
    left = await rig.tokens.of(USER)
    assert [t.platform for t in left] == ["webpush"]
    assert sender.dropped == 2 and sender.pushed == 1


async def test_rows_of_a_sender_that_died_mid_send_are_taken_over_after_the_lease(
    rig: Rig,
) -> None:
    dead, alive = rig.sender("n-dead"), rig.sender("n-alive")
    await dead.outbox.release(await rig.event())
    taken = await dead.outbox.claim()  # ... and it dies before sending or finishing
    assert len(taken) == 3
    assert await alive.run_once() == 0  # leased to the dead node
    rig.clock.at += LEASE - 1
    assert await alive.run_once() == 0
    rig.clock.at += 2
    assert await alive.run_once() == 3
    assert alive.pushed == 3 and await pending(rig.db) == []
    rows = await rig.db.fetch_all("SELECT COUNT(*) AS n FROM push_outbox")
    assert rows[0]["n"] == 0


async def test_two_senders_never_claim_the_same_row(rig: Rig) -> None:
    a, b = rig.sender("a"), rig.sender("b")
    for _ in range(4):
        await a.outbox.release(await rig.event())
    first = await a.outbox.claim(limit=5)
    second = await b.outbox.claim(limit=50)
    assert len(first) == 5 and len(second) == 7
    assert not {d.id for d in first} & {d.id for d in second}


async def test_an_open_circuit_puts_rows_back_without_spending_attempts(rig: Rig) -> None:
    await rig.db.execute("DELETE FROM push_tokens WHERE platform <> 'fcm'")
    sender = rig.sender(breaker_failures=1, breaker_reset=60.0)
    rig.fcm.fail_next.append(503)
    await sender.outbox.release(await rig.event())
    await sender.outbox.release(await rig.event())
    assert await sender.run_once(limit=1) == 1  # the 503 opens the circuit
    assert await sender.run_once(limit=1) == 1  # not sent: the circuit is open
    rows = await pending(rig.db)
    assert [r["attempts"] for r in rows] == [1, 0]
    assert len(rig.fcm.refused) == 1 and rig.fcm.received == []


async def test_push_texts_follow_the_accounts_locale(rig: Rig) -> None:
    sender = rig.sender()
    await rig.db.execute("UPDATE users SET locale = 'en' WHERE id = :u", u=USER)
    await sender.outbox.release(await rig.event("pass.used"))
    assert await sender.run_once() == 3
    assert rig.webpush.received[0].body["title"] == "Your guest pass was used"
    assert rig.apns.received[0].body["aps"]["alert"]["title"] == "Your guest pass was used"
    await rig.tokens.register(USER, {"platform": "fcm", "token": FCM_TOKEN, "locale": "ru"})
    await sender.outbox.release(await rig.event("access.automatic"))
    assert await sender.run_once() == 3
    assert rig.fcm.received[1].body["notification"]["title"] == "Шлагбаум открыт для вашей машины"
    assert json.loads(json.dumps(rig.fcm.received[1].body["data"]))["type"] == "access.automatic"


async def test_only_pushed_event_types_get_rows(rig: Rig) -> None:
    await rig.event("access.granted")
    await rig.event("access.denied")
    assert await pending(rig.db) == []
