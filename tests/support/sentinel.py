"""A private Redis with Sentinel: a master, a replica and three sentinels (``redis-server
--sentinel``), each on a free port with its files in a temporary directory, so that a test may
kill the master without disturbing the machine's shared Redis on 6379.

``down-after-milliseconds`` is 1000 (the default is 30 s): the sentinels agree the master is
down about a second after it dies, and promote the replica soon after.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port

SERVICE = "propdev"
QUORUM = 2


def _binary() -> str:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is needed for this test"
    return binary


@dataclass
class SentinelRig:
    """The running rig: ``sentinels`` as host:port pairs, the data servers by port."""

    workdir: Path
    sentinels: list[tuple[str, int]]
    first_master: int
    servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> str:
        """``PROPDEV_REDIS_SENTINELS``."""
        return ",".join(f"{h}:{p}" for h, p in self.sentinels)

    async def master(self) -> tuple[str, int] | None:
        """The master's address as the first sentinel that answers names it."""
        for _host, port in self.sentinels:
            try:
                line = await _ask(port, f"SENTINEL get-master-addr-by-name {SERVICE}")
            except OSError:
                continue
            parts = line.split()
            if len(parts) == 2:
                return parts[0], int(parts[1])
        return None

    def kill(self, port: int) -> None:
        """SIGKILL the data server on ``port`` (no shutdown, no save)."""
        proc = self.servers[port]
        proc.kill()
        proc.wait()

    def log(self) -> str:
        return "\n".join(
            f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:]
            for path in sorted(self.workdir.glob("*.log"))
        )


async def _ask(port: int, command: str) -> str:
    """One inline command to 127.0.0.1:``port``; the reply's lines joined (RESP stripped)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(command.encode() + b"\r\n")
        await writer.drain()
        async with asyncio.timeout(2):
            first = await reader.readline()
            if first.startswith(b"*"):
                count = int(first[1:])
                out = []
                for _ in range(max(count, 0)):
                    await reader.readline()  # $len
                    out.append((await reader.readline()).strip().decode())
                return " ".join(out)
            return first.strip().decode()
    finally:
        writer.close()


async def answers(port: int) -> bool:
    try:
        return (await _ask(port, "PING")) == "+PONG"
    except (OSError, TimeoutError):
        return False


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def _data_server(workdir: Path, port: int, replica_of: int | None) -> list[str]:
    args = [
        _binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--dbfilename", f"dump-{port}.rdb",
    ]  # fmt: skip
    if replica_of is not None:
        args += ["--replicaof", "127.0.0.1", str(replica_of)]
    return args


@contextlib.contextmanager
def sentinel_rig() -> Iterator[SentinelRig]:
    """Start a master, its replica and three sentinels; always kill all of them and remove
    their directory. Wait for readiness with ``ready(rig)``."""
    workdir = Path(tempfile.mkdtemp(prefix="propdev-sentinel-"))
    ports: list[int] = []
    while len(ports) < 5:
        port = free_port()
        if port not in ports:
            ports.append(port)
    master, replica, *sentinel_ports = ports
    rig = SentinelRig(workdir, [("127.0.0.1", p) for p in sentinel_ports], master)
    try:
        rig.servers[master] = _start(_data_server(workdir, master, None), workdir / "master.log")
        rig.servers[replica] = _start(
            _data_server(workdir, replica, master), workdir / "replica.log"
        )
        for port in sentinel_ports:
            conf = workdir / f"sentinel-{port}.conf"  # Sentinel rewrites it: must be writable
            conf.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                f"dir {workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master} {QUORUM}\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            rig.others.append(
                _start([_binary(), str(conf), "--sentinel"], workdir / f"sentinel-{port}.log")
            )
        yield rig
    finally:
        for proc in [*rig.servers.values(), *rig.others]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


async def ready(rig: SentinelRig) -> bool:
    """True once every server answers, the replica is in sync and each sentinel knows the
    master, the replica and the two other sentinels (a failover needs a majority of them)."""
    for port in rig.servers:
        if not await answers(port):
            return False
    try:
        if not await _synced(rig.first_master):
            return False
    except (OSError, TimeoutError, ValueError):
        return False
    for _host, port in rig.sentinels:
        try:
            known = await _ask(port, f"SENTINEL master {SERVICE}")
        except (OSError, TimeoutError):
            return False
        fields = known.split()
        values = dict(zip(fields[::2], fields[1::2], strict=False))
        if values.get("num-slaves") != "1" or values.get("num-other-sentinels") != "2":
            return False
    return True


async def _synced(master: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", master)
    try:
        writer.write(b"INFO replication\r\n")
        await writer.drain()
        async with asyncio.timeout(2):
            header = await reader.readline()
            body = await reader.readexactly(int(header[1:]) + 2)
    finally:
        writer.close()
    return b"connected_slaves:1" in body and b"state=online" in body
