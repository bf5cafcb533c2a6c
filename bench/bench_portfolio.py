"""A portfolio day: a morning rush, open loop, through one node and through three (issue #16).

    .venv/bin/python bench/bench_portfolio.py [--quick] [--sites 100] [--residents 50000]
        [--devices 2000] [--sockets 10000] [--rounds 3] [--base-rate 5] [--peak-rate 40]
        [--ramp 20] [--peak 20] [--mix open=0.8,plate=0.1,guest=0.1] [--json PATH]

**The portfolio.** ``--sites`` sites, one building each; ``--devices`` devices spread evenly over
them (per site: one parking barrier, the rest doors), each added to the vendor simulator
(``run.py partner-sim``, its own process) through its control API and to the store as an access
point of partner ``simulator``; ``--residents`` residents spread evenly over the sites, each
with the right to one door of its site (round robin) and to its site's barrier; one resident in
ten has a registered car plate. Seeding is timed apart (``seed_s`` and its parts): sites,
buildings and access points through ``Directory`` (the product's storage functions, 64 at a
time); residents as ``security.create_user`` writes them (the same columns, names sealed by the
vault) but in batches of 1,000 rows with **one** password hash shared by all of them (they never
log in: an Argon2 hash took 0.39 s here, 50,000 of them over 5 hours, measuring nothing of the
rush); rights with ``Directory.grant``'s statement, batched; plates through
``Vehicles.register`` (one audited unit each, one at a time: with 64 in flight PostgreSQL
reported a deadlock between two units' transactions, a finding of this benchmark); guest
passes through the API (``POST /api/v1/guest-passes``, 100 uses each). There is no bulk
import of residents in the product (only of access points, ``management.imports``), so that is
the fastest honest way.

**The nodes.** Real ``run.py serve`` processes on a fresh PostgreSQL database and the machine's
Redis (``bench_cluster``'s set-up and helpers), not pinned: every node, the simulator and the
load generator share the machine's two cores. A round is one rush through one node (n2 and n3
stopped, n1 holding every shard: the baseline) and one through three (n1, n2, n3 sharing the
shards), interleaved baseline first (``bench.common.interleave``, >= 3 rounds).

**The arrival curve (open loop).** Each rush is a schedule fixed before it starts: the arrival
rate climbs linearly from ``--base-rate`` to ``--peak-rate`` requests/s over ``--ramp`` s,
stays at the peak for ``--peak`` s and falls back over ``--ramp`` s; the n-th request is sent
at the moment the rate's integral reaches n, whatever the state of the earlier ones (no
connection waits for an answer before the next request is sent; a request still queued in the
client counts its wait). Latency is measured from the scheduled moment to the answer, so a
slow server cannot slow the load down and hide its queue (no coordinated omission). Requests
go round robin to the rush's nodes (a load balancer). The defaults (and ``--quick``) are sized
for this shared 2-core machine; the real morning rush is a flag away.

**The mix** (``--mix``, weights): ``open``: a resident (drawn from a pool of up to 2,000
residents of all sites, plus the socket holders) opens its door through the app API
(``POST /api/v1/access-points/{id}/open``, a bearer token minted with the node's key);
``plate``: the vendor reports a registered plate at a barrier, ``POST /partner/v1/events`` with
``plate_recognized`` (as a partner calls: mTLS with its certificate, its bound
``client_credentials`` token, a Standard Webhooks signature): the node opens the barrier before
it answers; ``guest``: the same path with ``pass_presented`` and a guest code at a door of its
pass. Beside these, **partner callbacks**: the simulator reports an ``entry`` 200 ms after every
open it confirms (``/sim/v1/passages``), posted back to n1 as the vendor does. **WebSocket
clients**: ``--sockets`` residents each hold one ``/api/v1/ws`` socket for the whole rush
(spread round robin over the rush's nodes); they are among the openers, and every
``access.granted`` their opens produce must reach their socket (a missing one is an error).

**Figures** (3 nodes vs the same run's 1 node; info, no goals: an open loop's throughput is the
schedule, so what grows or shrinks is latency, CPU and memory): PFo/PFp/PFg p99 per kind (p50
beside it), PFw events delivered to the sockets, PFc CPU-seconds of all nodes per 1,000 opens
(every request of the mix commands a door), PFr RSS per node (MB, at the rush's end, sockets
still open). Any error (a non-2xx, a refused event, a timeout, a lost WebSocket event, a socket
dropped) fails the figures of its kind, and PFc/PFr take every error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import redis

from bench.__main__ import git_commit, markdown_table, rows
from bench.bench_cluster import REDIS_URL, Owners, partner_sim, settled
from bench.bench_open import log_in_residents
from bench.common import (
    ROOT,
    Node,
    figure,
    free_port,
    interleave,
    latency_summary,
    node_env,
    print_figures,
    process_cpu_seconds,
    render_table,
    running_node,
    seed_demo,
    until,
    write_json,
)
from bench.estate import add_sim_devices
from tests.support.postgres import fresh_database

KINDS = ("open", "plate", "guest")
PARTNER = "simulator"
PASS_USES = 100  # guest_passes' max_uses at most (propdev.access.passes.MAX_USES)
OPENER_POOL = 2000  # residents (beside the socket holders) whose tokens are minted
PASSAGE_MS = 200  # the simulator's entry callback after each confirmed open
REQUEST_TIMEOUT_S = 30.0
DELIVERY_GRACE_S = 15.0  # how long the sockets may take to receive the last events


# --- the portfolio -------------------------------------------------------------------------


@dataclass
class Scale:
    sites: int
    residents: int
    devices: int
    sockets: int


@dataclass
class Resident:
    id: str
    site: int
    door: str  # access point id
    plate: str | None = None


@dataclass
class Portfolio:
    scale: Scale
    residents: list[Resident]
    barriers: dict[int, str]  # site -> barrier access point
    devices: dict[str, str]  # access point -> device id
    seed_s: dict[str, float] = field(default_factory=dict)


def plate_of(i: int) -> str:
    """A unique Russian-style plate per index (letters of the Cyrillic look-alike set)."""
    letters = "ABEKMHOPCTYX"
    number, rest = i % 999 + 1, i // 999
    a, b, c = letters[rest % 12], letters[rest // 12 % 12], letters[rest // 144 % 12]
    return f"{a}{number:03d}{b}{c}77"


def layout(scale: Scale) -> Portfolio:
    per_site = max(2, scale.devices // scale.sites)
    devices: dict[str, str] = {}
    barriers: dict[int, str] = {}
    doors: dict[int, list[str]] = {}
    for s in range(scale.sites):
        barriers[s] = f"pf-s{s:03d}-barrier"
        doors[s] = [f"pf-s{s:03d}-door{d:02d}" for d in range(1, per_site)]
        for d, ap in enumerate([barriers[s], *doors[s]]):
            devices[ap] = f"pf-dev-{s:03d}-{d:02d}"
    residents = []
    for i in range(scale.residents):
        site = i % scale.sites
        own = doors[site][(i // scale.sites) % len(doors[site])]
        plate = plate_of(i // 10) if i % 10 == 0 else None
        residents.append(Resident(str(uuid.UUID(int=i + 1)), site, own, plate))
    return Portfolio(scale, residents, barriers, devices)


async def seed_store(env: dict[str, str], portfolio: Portfolio) -> dict[str, float]:
    """Write the portfolio to the store with the product's storage functions; seconds per part."""
    from propdev.access.vehicles import Vehicles
    from propdev.config import Settings
    from propdev.security import open_vault
    from propdev.security.crypto import vault_of
    from propdev.security.passwords import hash_password
    from propdev.security.personal import seal_user_fields
    from propdev.storage import Database
    from propdev.storage.directory import AccessPoint, Directory

    settings = Settings.from_env(env)
    db = Database(settings.database_url)
    took: dict[str, float] = {}
    try:
        await open_vault(settings, db)
        directory = Directory(db)
        started = time.perf_counter()
        for s in range(portfolio.scale.sites):
            await directory.put_site(f"pf-site-{s:03d}", f"Portfolio site {s}")
            await directory.put_building(f"pf-bld-{s:03d}", f"pf-site-{s:03d}", f"Building {s}")
        points = [
            AccessPoint(
                ap,
                ap,
                "barrier" if ap.endswith("barrier") else "door",
                f"pf-site-{ap[4:7]}",
                f"pf-bld-{ap[4:7]}",
                PARTNER,
                device,
            )
            for ap, device in portfolio.devices.items()
        ]
        for at in range(0, len(points), 64):
            await asyncio.gather(*(directory.put_access_point(p) for p in points[at : at + 64]))
        took["estate_s"] = time.perf_counter() - started

        started = time.perf_counter()
        shared_hash = await asyncio.to_thread(hash_password, uuid.uuid4().hex)
        vault, now = vault_of(db), time.time()
        rows, keys = [], []
        for n, r in enumerate(portfolio.residents):
            key, wrapped = vault.new_person_key(r.id)  # as create_user makes it
            keys.append({"u": r.id, "w": wrapped, "kid": vault.primary_kid, "now": now})
            sealed = seal_user_fields(vault, r.id, key, full_name=f"Resident {n}", phone="")
            rows.append(
                {
                    "id": r.id,
                    "u": f"pf-resident-{n:06d}",
                    "h": shared_hash,
                    "roles": "resident",
                    "full_name": sealed["full_name"],
                    "now": now,
                }
            )
        for at in range(0, len(rows), 1000):
            await db.execute_many(
                "INSERT INTO users (id, username, password_hash, roles, full_name, created_at)"
                " VALUES (:id, :u, :h, :roles, :full_name, :now)",
                rows[at : at + 1000],
            )
            await db.execute_many(
                "INSERT INTO person_keys (user_id, wrapped, kid, created_at)"
                " VALUES (:u, :w, :kid, :now)",
                keys[at : at + 1000],
            )
        took["residents_s"] = time.perf_counter() - started

        started = time.perf_counter()
        rights = [{"u": r.id, "a": r.door} for r in portfolio.residents]
        rights += [{"u": r.id, "a": portfolio.barriers[r.site]} for r in portfolio.residents]
        for at in range(0, len(rights), 2000):
            await db.execute_many(
                "INSERT INTO rights (user_id, access_point_id) VALUES (:u, :a) "
                "ON CONFLICT (user_id, access_point_id) DO NOTHING",
                rights[at : at + 2000],
            )
        took["rights_s"] = time.perf_counter() - started

        started = time.perf_counter()
        vehicles = Vehicles(db)
        owners = [r for r in portfolio.residents if r.plate is not None]
        for r in owners:  # one at a time: 64 in flight deadlocked in PostgreSQL (see the note)
            await vehicles.register(r.id, r.plate)
        took["plates_s"] = time.perf_counter() - started
    finally:
        await db.close()
    return took


def mint_tokens(env: dict[str, str], model: str, subjects: list[str]) -> dict[str, str]:
    """An access token per subject with ``model``'s claims (a resident's app login), signed
    with the node's key as its token endpoint signs them."""
    import jwt

    from propdev.config import Settings
    from propdev.security import SigningKeys, TokenIssuer

    settings = Settings.from_env(env)
    issuer = TokenIssuer(settings, SigningKeys.load_or_create(settings.pki_dir / "jwt"))
    claims = jwt.decode(model, options={"verify_signature": False})
    return {
        s: issuer.issue_access_token(
            s, claims["client_id"], claims["scope"], claims.get("roles", []), claims.get("amr", [])
        )
        for s in subjects
    }


async def create_passes(
    base_url: str, ca: Path, owners: list[tuple[Resident, str]]
) -> list[dict[str, str]]:
    """A guest pass per (resident, token) for its door, through the API: [{code, device}]."""
    context = ssl.create_default_context(cafile=str(ca))
    now = time.time()
    body = {
        "valid_from": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
        "valid_until": dt.datetime.fromtimestamp(now + 86400, dt.UTC).isoformat(),
        "max_uses": PASS_USES,
    }
    passes = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for resident, token in owners:
            async with session.post(
                f"{base_url}/api/v1/guest-passes",
                json={**body, "access_point_ids": [resident.door]},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                answer = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"guest pass refused: {resp.status} {answer}")
            passes.append({"code": str(answer["code"]), "door": resident.door})
    return passes


# --- the rush: schedule and load generator (its own process) ---------------------------------


@dataclass
class Curve:
    base_rate: float
    peak_rate: float
    ramp_s: float
    peak_s: float

    @property
    def duration(self) -> float:
        return 2 * self.ramp_s + self.peak_s

    def rate(self, t: float) -> float:
        up, down = self.ramp_s, self.ramp_s + self.peak_s
        if t < up:
            return self.base_rate + (self.peak_rate - self.base_rate) * t / up
        if t < down:
            return self.peak_rate
        return self.peak_rate - (self.peak_rate - self.base_rate) * (t - down) / self.ramp_s

    def arrivals(self) -> list[float]:
        """The moments (s from the start) at which the rate's integral reaches 1, 2, 3, ..."""
        out: list[float] = []
        total, t, step = 0.0, 0.0, 0.001
        while t < self.duration:
            total += self.rate(t) * step
            t += step
            while total >= len(out) + 1:
                out.append(t)
        return out


def schedule(curve: Curve, mix: dict[str, float], seed: int) -> list[tuple[float, str]]:
    rng = random.Random(seed)
    kinds, weights = list(mix), list(mix.values())
    return [(t, rng.choices(kinds, weights)[0]) for t in curve.arrivals()]


@dataclass
class RushPlan:
    ports: list[int]
    node_pids: list[int]
    ca_cert: str
    pki_dir: str
    partner_secret: str
    arrivals: list[tuple[float, str]]
    openers: list[tuple[str, str]]  # (token, access point) of the opener pool
    sockets: list[tuple[str, str]]  # (token, access point) of the socket holders
    plates: list[tuple[str, str]]  # (plate, barrier device)
    codes: list[tuple[str, str]]  # (guest code, door device)
    seed: int
    warmup: list[tuple[float, str]]  # arrivals before the rush, not measured (errors count)


@dataclass
class RushResult:
    nodes: int
    latency: dict[str, dict[str, float | int]]  # kind -> latency_summary
    statuses: dict[str, dict[str, int]]
    sent: dict[str, int]
    ws: dict[str, int]  # sockets, dropped, expected, delivered, lost
    node_cpu_s: list[float]
    node_rss_mb: list[float]
    window_s: float
    late_sends_ms: float  # how far behind its schedule the sender fell at worst
    client_cpu_s: float
    idle_cpu_per_s: list[float]  # each node's CPU share before the rush (sockets open, no load)
    warmup_ok: int
    warmup_errors: int
    unopened: int = 0  # successful plates and codes that commanded no door (set by the parent)
    # The database's own counters over the rush, warm-up included (set by the parent):
    # transactions committed, rows inserted, updated and deleted (pg_stat_database).
    store: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> dict[str, int]:
        out = {k: int(v["errors"]) for k, v in self.latency.items()}
        out["ws"] = self.ws["dropped"] + self.ws["lost"]
        out["warmup"] = self.warmup_errors
        out["unopened"] = self.unopened
        return out

    @property
    def opens(self) -> int:
        return sum(int(v["ok"]) for v in self.latency.values())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _rush(plan: RushPlan) -> RushResult:
    from propdev.partners.signing import sign
    from propdev.pki import client_context, partner_paths

    rng = random.Random(plan.seed)
    urls = [f"https://127.0.0.1:{p}" for p in plan.ports]
    resident_ctx = ssl.create_default_context(cafile=plan.ca_cert)
    partner_ctx = client_context(Path(plan.pki_dir), partner_paths(Path(plan.pki_dir), PARTNER))
    apps = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=resident_ctx, limit=512))
    partner = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=partner_ctx, limit=256))
    sockets_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=resident_ctx, limit=0))
    samples: dict[str, list[tuple[float, bool]]] = {k: [] for k in KINDS}
    statuses: dict[str, dict[str, int]] = {k: {} for k in KINDS}
    sent = dict.fromkeys(KINDS, 0)
    ws = {"sockets": 0, "dropped": 0, "expected": 0, "delivered": 0, "lost": 0}
    holders = {token for token, _ in plan.sockets}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    try:
        async with partner.post(
            f"{urls[0]}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": PARTNER},
        ) as resp:
            partner_token = str((await resp.json())["access_token"])

        stopping = False
        progress = asyncio.Event()  # set whenever a socket connects, drops or gets an event

        async def hold(i: int, token: str, ready: asyncio.Semaphore) -> None:
            async with ready:
                socket = await sockets_http.ws_connect(
                    f"{urls[i % len(urls)]}/api/v1/ws",
                    headers={"Authorization": f"Bearer {token}"},
                    autoping=True,
                )
            ws["sockets"] += 1
            progress.set()
            try:
                async for message in socket:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        if json.loads(message.data).get("type") == "access.granted":
                            ws["delivered"] += 1
                            progress.set()
                    elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                        break
            finally:
                if not stopping:
                    ws["dropped"] += 1
                    progress.set()
                await socket.close()

        handshakes = asyncio.Semaphore(100)
        holders_tasks = [
            asyncio.create_task(hold(i, t, handshakes)) for i, (t, _) in enumerate(plan.sockets)
        ]
        await asyncio.wait_for(
            _until(lambda: ws["sockets"] + ws["dropped"] >= len(plan.sockets), progress), 600
        )

        async def one(kind: str, at: float, n: int, measured: bool = True) -> None:
            url = urls[n % len(urls)]
            try:
                if kind == "open":
                    token, ap = rng.choice(plan.openers)
                    async with apps.post(
                        f"{url}/api/v1/access-points/{ap}/open",
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=timeout,
                    ) as resp:
                        await resp.read()
                        status = str(resp.status)
                    if token in holders and status == "200":
                        ws["expected"] += 1
                else:
                    value, device = rng.choice(plan.plates if kind == "plate" else plan.codes)
                    fields = {"plate": value} if kind == "plate" else {"code": value}
                    event = {
                        "event_id": uuid.uuid4().hex,
                        "device_id": device,
                        "type": "plate_recognized" if kind == "plate" else "pass_presented",
                        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                        **fields,
                    }
                    body = json.dumps({"events": [event]}).encode()
                    headers = {
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {partner_token}",
                        **sign(plan.partner_secret, uuid.uuid4().hex, body),
                    }
                    async with partner.post(
                        f"{url}/partner/v1/events", data=body, headers=headers, timeout=timeout
                    ) as resp:
                        answer = await resp.json(content_type=None)
                        status = str(resp.status)
                    if status == "202" and answer.get("accepted") != 1:
                        status = "not-accepted"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                status = type(exc).__name__
            if not measured:
                warm[status.startswith("2")] += 1
                return
            samples[kind].append((time.perf_counter() - at, status.startswith("2")))
            statuses[kind][status] = statuses[kind].get(status, 0) + 1

        async def send(arrivals: list[tuple[float, str]], measured: bool) -> float:
            """Every request at its moment (open loop); how late the sender was at worst."""
            start = time.perf_counter() + 0.2
            late = 0.0
            tasks = []
            for n, (offset, kind) in enumerate(arrivals):
                at = start + offset
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                late = max(late, time.perf_counter() - at)
                if measured:
                    sent[kind] += 1
                tasks.append(asyncio.create_task(one(kind, at, n, measured)))
            await asyncio.gather(*tasks)
            return late

        warm = {True: 0, False: 0}
        await send(plan.warmup, measured=False)
        idle_before = [process_cpu_seconds(pid) for pid in plan.node_pids]
        await asyncio.sleep(2.0)  # a quiet moment: what the nodes burn without requests
        idle = [
            (process_cpu_seconds(p) - b) / 2.0
            for p, b in zip(plan.node_pids, idle_before, strict=True)
        ]
        cpu_before = [process_cpu_seconds(pid) for pid in plan.node_pids]
        client_before = time.process_time()
        start = time.perf_counter()
        late = await send(plan.arrivals, measured=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                _until(lambda: ws["delivered"] >= ws["expected"], progress), DELIVERY_GRACE_S
            )
        window = time.perf_counter() - start
        cpu = [process_cpu_seconds(p) - b for p, b in zip(plan.node_pids, cpu_before, strict=True)]
        rss = [rss_mb(pid) for pid in plan.node_pids]  # sockets still open
        client_cpu = time.process_time() - client_before
        ws["lost"] = max(0, ws["expected"] - ws["delivered"])
        stopping = True
        for task in holders_tasks:
            task.cancel()
        await asyncio.gather(*holders_tasks, return_exceptions=True)
    finally:
        for session in (apps, partner, sockets_http):
            await session.close()
    return RushResult(
        nodes=len(plan.ports),
        latency={k: latency_summary(v) for k, v in samples.items()},
        statuses=statuses,
        sent=sent,
        ws=ws,
        node_cpu_s=cpu,
        node_rss_mb=rss,
        window_s=window,
        late_sends_ms=late * 1000,
        client_cpu_s=client_cpu,
        idle_cpu_per_s=idle,
        warmup_ok=warm[True],
        warmup_errors=warm[False],
    )


async def _until(check: Any, progress: asyncio.Event) -> None:
    """Until ``check()`` holds, looked at again each time ``progress`` is set."""
    while not check():
        progress.clear()
        await progress.wait()


def rush_in_subprocess(plan: RushPlan) -> RushResult:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "loadgen"],
        cwd=ROOT,
        input=json.dumps(asdict(plan)).encode(),
        capture_output=True,
        check=False,
        timeout=max(a for a, _ in plan.arrivals) + 900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr.decode()}")
    return RushResult(**json.loads(done.stdout))


def _loadgen_main() -> None:
    data = json.loads(sys.stdin.read())
    data["arrivals"] = [tuple(a) for a in data["arrivals"]]
    result = asyncio.run(_rush(RushPlan(**data)))
    sys.stdout.write(json.dumps(asdict(result)) + "\n")


# --- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    scale = Scale(args.sites, args.residents, args.devices, args.sockets)
    curve = Curve(args.base_rate, args.peak_rate, args.ramp, args.peak)
    portfolio = layout(scale)
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    owners = Owners(client, prefix)
    with (
        tempfile.TemporaryDirectory(prefix="propdev-bench-portfolio-") as tmp,
        fresh_database() as database_url,
        contextlib.ExitStack() as stack,
    ):
        data_dir = Path(tmp)
        sim_port = free_port()
        ports = {f"n{i}": free_port() for i in (1, 2, 3)}
        sim_url = f"https://127.0.0.1:{sim_port}"
        shared = {
            "PROPDEV_DATABASE_URL": database_url,
            "PROPDEV_REDIS_URL": REDIS_URL,
            "PROPDEV_REDIS_PREFIX": prefix,
            "PROPDEV_PARTNER_URL": sim_url,
            "PROPDEV_PUBLIC_URL": f"https://127.0.0.1:{ports['n1']}",
            "PROPDEV_CALLBACK_URL": f"https://127.0.0.1:{ports['n1']}",
            "PROPDEV_ACCESS_TOKEN_TTL": "900",
            "PROPDEV_PARTNER_TIMEOUT": "5",
            "PROPDEV_CONNECTIONS_EXEMPT": "127.0.0.0/8",
        }
        envs = {
            name: node_env(data_dir, port, PROPDEV_NODE_ID=name, **shared)
            for name, port in ports.items()
        }
        t0 = time.perf_counter()
        credentials = seed_demo(envs["n1"])
        demo_s = time.perf_counter() - t0
        portfolio.seed_s = asyncio.run(seed_store(envs["n1"], portfolio))
        portfolio.seed_s["demo_s"] = demo_s
        stack.enter_context(partner_sim(data_dir, sim_port, envs["n1"]))
        t0 = time.perf_counter()
        asyncio.run(
            add_sim_devices(
                sim_url, data_dir / "pki" / "ca.pem", portfolio.devices, passage_ms=PASSAGE_MS
            )
        )
        portfolio.seed_s["simulator_devices_s"] = time.perf_counter() - t0
        for name in ports:  # each node's log apart; the keys and PKI shared
            (data_dir / name).mkdir()
            (data_dir / name / "pki").symlink_to(data_dir / "pki")
        nodes: dict[str, Node] = {}
        stacks: dict[str, contextlib.ExitStack] = {}

        def start(name: str) -> None:
            stacks[name] = stack.enter_context(contextlib.ExitStack())
            nodes[name] = stacks[name].enter_context(
                running_node(data_dir / name, envs[name], cpu=None)
            )

        def halt(name: str) -> None:
            stacks.pop(name).close()
            nodes.pop(name)

        start("n1")
        until(lambda: settled(nodes, owners), within=60, what="n1 holds every shard")
        anna = {**credentials, "residents": credentials["residents"][:1]}
        model = asyncio.run(log_in_residents(nodes["n1"].base_url, nodes["n1"].ca_cert, anna))
        rng = random.Random(16)
        residents = portfolio.residents
        holders = residents[: scale.sockets]
        rest = residents[scale.sockets :]
        pool = rng.sample(rest, min(OPENER_POOL, len(rest)))
        plate_owners = [r for r in rest if r.plate is not None]
        arrivals = schedule(curve, args.mix, seed=16)
        warm_curve = Curve(args.base_rate, args.base_rate, 0.0, args.warmup)
        warmup = schedule(warm_curve, args.mix, seed=17) if args.warmup > 0 else []
        guests_per_rush = sum(1 for _, k in arrivals if k == "guest")
        pass_count = max(1, math.ceil(guests_per_rush * args.rounds * 2 / (PASS_USES * 0.9)))
        in_pool = {r.id for r in pool}
        pass_owners = [r for r in rest if r.id not in in_pool][:pass_count] or pool[:pass_count]
        subjects = [r.id for r in (*holders, *pool, *pass_owners)]
        mint_s: list[float] = []

        def fresh_tokens() -> dict[str, str]:  # they live 15 min at most: new ones every rush
            t0 = time.perf_counter()
            minted = mint_tokens(envs["n1"], next(iter(model.values())), subjects)
            mint_s.append(time.perf_counter() - t0)
            return minted

        tokens = fresh_tokens()
        t0 = time.perf_counter()
        passes = asyncio.run(
            create_passes(
                nodes["n1"].base_url,
                nodes["n1"].ca_cert,
                [(r, tokens[r.id]) for r in pass_owners],
            )
        )
        portfolio.seed_s["guest_passes_s"] = time.perf_counter() - t0
        from propdev.partners.signing import webhook_secret

        def plan(names: list[str], round_seed: int) -> RushPlan:
            tokens = fresh_tokens()
            return RushPlan(
                ports=[nodes[n].port for n in names],
                node_pids=[nodes[n].process.pid for n in names],
                ca_cert=str(data_dir / "pki" / "ca.pem"),
                pki_dir=str(data_dir / "pki"),
                partner_secret=webhook_secret(data_dir, PARTNER),
                arrivals=arrivals,
                openers=[(tokens[r.id], r.door) for r in (*pool, *holders)],
                sockets=[(tokens[r.id], r.door) for r in holders],
                plates=[
                    (str(r.plate), portfolio.devices[portfolio.barriers[r.site]])
                    for r in plate_owners
                ],
                codes=[(p["code"], portfolio.devices[p["door"]]) for p in passes],
                seed=round_seed,
                warmup=warmup,
            )

        counter = iter(range(1000))

        def rush(names: list[str]) -> RushResult:
            for name in envs:
                if name in names and name not in nodes:
                    start(name)
                elif name not in names and name in nodes:
                    halt(name)
            until(lambda: settled(nodes, owners), within=60, what=f"{names} share the shards")
            before = asyncio.run(sim_commands(sim_url, data_dir / "pki" / "ca.pem"))
            written = store_counters(database_url)
            result = rush_in_subprocess(plan(names, next(counter)))
            commanded = asyncio.run(sim_commands(sim_url, data_dir / "pki" / "ca.pem")) - before
            result.unopened = max(0, result.opens + result.warmup_ok - commanded)
            after = settled_store_counters(database_url)
            result.store = {
                k: after[k] - written.get(k, 0) for k in after if after[k] - written.get(k, 0)
            }
            print(f"  {summary_line(result)}", file=sys.stderr, flush=True)
            return result

        runs = interleave(
            args.rounds, {"one": lambda: rush(["n1"]), "three": lambda: rush(["n1", "n2", "n3"])}
        ).results
        for name in list(nodes):
            halt(name)
    client.delete(*(client.keys(f"{{{prefix}}}:*") or [f"{{{prefix}}}:none"]))
    client.close()
    return {
        "benchmark": "portfolio",
        "python": platform.python_version(),
        "scale": asdict(scale),
        "curve": {**asdict(curve), "duration_s": curve.duration, "arrivals": len(arrivals)},
        "mix": args.mix,
        "rounds": args.rounds,
        "seed_s": {**portfolio.seed_s, "total_s": sum(portfolio.seed_s.values())},
        "token_minting_s": statistics.median(mint_s),
        "passes": len(passes),
        "opener_pool": len(pool) + len(holders),
        "plates": len(plate_owners),
        "runs": {k: [described(r) for r in v] for k, v in runs.items()},
        "figures": figures(runs["three"], runs["one"]),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def store_counters(database_url: str) -> dict[str, int]:
    """The database's cumulative counters (``pg_stat_database``, and rows inserted per table
    as ``inserted:<table>``; this database only, so the other users of the server do not
    count). ``commits`` counts every transaction, reads too."""
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
        tables = conn.execute("SELECT relname, n_tup_ins FROM pg_stat_user_tables").fetchall()
    assert row is not None
    out = dict(zip(("commits", "inserted", "updated", "deleted"), map(int, row), strict=True))
    out.update({f"inserted:{name}": int(n) for name, n in tables})
    return out


def settled_store_counters(database_url: str) -> dict[str, int]:
    """The counters once the nodes' backends have reported (they do so at most once a second,
    or 10 s after going idle): two reads a second apart that agree on the rows, within 15 s."""
    last = store_counters(database_url)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = store_counters(database_url)
        if all(now[k] == last[k] for k in ("inserted", "updated", "deleted")):
            return now
        last = now
    return last


async def sim_commands(sim_url: str, ca: Path) -> int:
    """How many open commands the simulator has received so far."""
    context = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        async with session.get(f"{sim_url}/sim/v1/commands") as resp:
            return len(await resp.json())


def described(r: RushResult) -> dict[str, Any]:
    return asdict(r) | {
        "errors": r.errors,
        "cpu_s_per_1000": cpu_per_1000(r),
        "cpu_s_per_1000_above_idle": cpu_per_1000_above_idle(r),
    }


def cpu_per_1000(r: RushResult) -> float:
    return sum(r.node_cpu_s) / r.opens * 1000 if r.opens else 0.0


def cpu_per_1000_above_idle(r: RushResult) -> float:
    """The same without what the nodes burn with no request (heartbeats, leases, sockets)."""
    busy = sum(r.node_cpu_s) - sum(r.idle_cpu_per_s) * r.window_s
    return busy / r.opens * 1000 if r.opens else 0.0


def figures(three: list[RushResult], one: list[RushResult]) -> list[dict[str, Any]]:
    def errs(runs: list[RushResult], kind: str | None = None) -> int:
        return sum(sum(r.errors.values()) if kind is None else r.errors[kind] for r in runs)

    out = []
    names = {"open": ("PFo", "app opens"), "plate": ("PFp", "plates"), "guest": ("PFg", "codes")}
    for kind, (goal, what) in names.items():
        if not any(r.sent[kind] for r in one):
            continue
        out.append(
            figure(
                goal,
                f"portfolio rush, {what}: p99, 3 nodes vs 1",
                [float(r.latency[kind]["p99_ms"]) for r in three],
                [float(r.latency[kind]["p99_ms"]) for r in one],
                "1 node",
                "ms",
                None,
                errors=errs(three, kind),
                baseline_errors=errs(one, kind),
                attempts=sum(r.sent[kind] for r in (*three, *one)),
                p50_ms=statistics.median(float(r.latency[kind]["p50_ms"]) for r in three),
                p99_ms=statistics.median(float(r.latency[kind]["p99_ms"]) for r in three),
                baseline_p50_ms=statistics.median(float(r.latency[kind]["p50_ms"]) for r in one),
            )
        )
    out.append(
        figure(
            "PFw",
            "portfolio rush, events delivered to sockets, 3 nodes vs 1",
            [float(r.ws["delivered"]) for r in three],
            [float(r.ws["delivered"]) for r in one],
            "1 node",
            "events",
            None,
            errors=errs(three, "ws"),
            baseline_errors=errs(one, "ws"),
            sockets=three[0].ws["sockets"],
        )
    )
    out.append(
        figure(
            "PFc",
            "portfolio rush, node CPU-s per 1,000 opens (all nodes), 3 nodes vs 1",
            [cpu_per_1000(r) for r in three],
            [cpu_per_1000(r) for r in one],
            "1 node",
            "CPU-s",
            None,
            errors=errs(three),
            baseline_errors=errs(one),
            above_idle=statistics.median(cpu_per_1000_above_idle(r) for r in three),
            baseline_above_idle=statistics.median(cpu_per_1000_above_idle(r) for r in one),
        )
    )
    out.append(
        figure(
            "PFr",
            "portfolio rush, RSS per node (largest), 3 nodes vs 1",
            [max(r.node_rss_mb) for r in three],
            [max(r.node_rss_mb) for r in one],
            "1 node",
            "MB",
            None,
            errors=errs(three),
            baseline_errors=errs(one),
            rss_sum_mb=statistics.median(sum(r.node_rss_mb) for r in three),
            baseline_rss_sum_mb=statistics.median(sum(r.node_rss_mb) for r in one),
        )
    )
    return out


def summary_line(r: RushResult) -> str:
    lat = ", ".join(
        f"{k} {r.sent[k]} sent p50/p99 {r.latency[k]['p50_ms']:.0f}/{r.latency[k]['p99_ms']:.0f} ms"
        for k in KINDS
        if r.sent[k]
    )
    return (
        f"{r.nodes} node(s): {lat}; errors {r.errors}; ws {r.ws}; CPU-s/1000 opens "
        f"{cpu_per_1000(r):.1f}; RSS MB {[round(x) for x in r.node_rss_mb]}; "
        f"sender late by at most {r.late_sends_ms:.0f} ms; answers {r.statuses}; "
        f"store {r.store}"
    )


def table(result: dict[str, Any]) -> str:
    rows = [
        ["nodes", "kind", "sent", "p50 ms", "p99 ms", "errors", "CPU-s/1000 (above idle)", "RSS MB"]
    ]
    for runs in result["runs"].values():
        for n, r in enumerate(runs, 1):
            for kind in KINDS:
                if not r["sent"][kind]:
                    continue
                lat = r["latency"][kind]
                rows.append(
                    [
                        f"{r['nodes']} (round {n})",
                        kind,
                        str(r["sent"][kind]),
                        f"{lat['p50_ms']:.0f}",
                        f"{lat['p99_ms']:.0f}",
                        str(r["errors"][kind]),
                        f"{r['cpu_s_per_1000']:.1f} ({r['cpu_s_per_1000_above_idle']:.1f})",
                        "/".join(f"{x:.0f}" for x in r["node_rss_mb"]),
                    ]
                )
    seed = result["seed_s"]
    return "\n".join(
        [
            render_table(rows, right=(2, 3, 4, 5, 6)),
            "other errors per round: "
            + "; ".join(
                f"{r['nodes']} node(s) ws {r['errors']['ws']} warm-up {r['errors']['warmup']} "
                f"unopened {r['errors']['unopened']}"
                for runs in result["runs"].values()
                for r in runs
            ),
            f"seeding {seed['total_s']:.1f} s: "
            + ", ".join(f"{k} {v:.1f}" for k, v in seed.items() if k != "total_s"),
            f"scale {result['scale']}; curve {result['curve']}; mix {result['mix']}",
            "not pinned: nodes, simulator and load generator share 2 cores with other users",
        ]
    )


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind not in KINDS:
            raise argparse.ArgumentTypeError(f"unknown kind {kind!r} (one of {KINDS})")
        mix[kind] = float(weight)
    return mix


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small portfolio, short rushes")
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--residents", type=int, default=50000)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--sockets", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3, help="at least 3")
    parser.add_argument("--base-rate", type=float, default=5.0, help="requests/s before the rush")
    parser.add_argument("--peak-rate", type=float, default=40.0, help="requests/s at the peak")
    parser.add_argument("--ramp", type=float, default=20.0, help="s of ramp up (and down)")
    parser.add_argument("--peak", type=float, default=20.0, help="s at the peak")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="s at the base rate first, not measured"
    )
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("open=0.8,plate=0.1,guest=0.1"))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--save",
        action="store_true",
        help="write docs/benchmarks/<date>-<commit>-portfolio[-quick].json and .md",
    )
    parser.add_argument(
        "--from-json", type=Path, help="print (and --save) a result written before; run nothing"
    )
    args = parser.parse_args()
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
        print(table(result))
        print_figures(result["figures"])
        if args.save:
            save(result)
        return
    if args.quick:
        args.sites, args.residents, args.devices, args.sockets = 20, 5000, 200, 300
        args.ramp, args.peak, args.peak_rate = 8.0, 8.0, 20.0
    result = run(args)
    result.update(
        quick=args.quick,
        commit=git_commit(),
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        loadavg_after=os.getloadavg(),
    )
    print(table(result))
    print_figures(result["figures"])
    write_json(args.json, result)
    if args.save:
        save(result)


def save(result: dict[str, Any]) -> None:
    """The result as JSON and a markdown table under docs/benchmarks/, named like the others."""
    stem = (
        f"{result['date'][:10]}-{result['commit']}-portfolio{'-quick' if result['quick'] else ''}"
    )
    path = ROOT / "docs" / "benchmarks" / stem
    write_json(path.with_suffix(".json"), result)
    path.with_suffix(".md").write_text(
        f"# Portfolio day {result['date'][:10]}, commit {result['commit']}\n\n"
        f"`.venv/bin/python bench/bench_portfolio.py{' --quick' if result['quick'] else ''}`"
        f" (scale {result['scale']}); the machine (2 cores) was shared with other engineers' "
        f"work, load average {result['loadavg_after'][0]:.1f} at the end. See "
        "`docs/scaling.md` for what the figures say.\n\n"
        + markdown_table(rows(result["figures"]))
        + "\n\n```\n"
        + table(result)
        + "\n```\n"
    )
    print(f"saved {path}.json and .md")


if __name__ == "__main__":
    if sys.argv[1:2] == ["loadgen"]:
        _loadgen_main()
    else:
        cli()
