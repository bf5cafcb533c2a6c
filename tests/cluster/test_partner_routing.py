"""gRPC commands and asynchronous vendors' confirmations in a cluster: a partner's command stream
and its events may be on any node, and acme's ``command_result`` callback may reach a node that
does not own the door; the open on the door's owner still gets its command out and its result
back (forwarded over the nodes' inboxes, never by the door's actor)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from propdev.config import Settings
from propdev.devkit import LOOPBACK, SITE, register_partner
from propdev.grpc import partner_pb2, partner_pb2_grpc
from propdev.pki import partner_paths
from propdev.registry import preferred_owner, shard_of
from propdev.storage import Database
from propdev.storage.directory import AccessPoint, Directory
from tests.cluster.conftest import Cluster, Node, eventually, three_nodes
from tests.cluster.test_cluster import nodes_view
from tests.conftest import free_port
from tests.support.partner import partner_client
from tests.support.processes import cli_env

pytestmark = pytest.mark.slow

NAMES = ("n1", "n2", "n3")
STREAM_DEVICE = "sc-door-1"  # partner streamco: commands over gRPC
ACME_DEVICE = "LK-7F3A-0001"  # partner acme: 202 + ticket, the result by callback
Ack = partner_pb2.EventAck


def door_not_on(node: str, prefix: str) -> str:
    """An access point id whose shard ``node`` will not own (rendezvous over the 3 nodes)."""
    for i in range(1000):
        candidate = f"{prefix}-{i}"
        if preferred_owner(shard_of(candidate), NAMES) != node:
            return candidate
    raise AssertionError("no such id")


STREAM_DOOR = door_not_on("n1", "ap-stream")
ACME_DOOR = door_not_on("n1", "ap-acme")  # the simulator calls n1 back: never the owner


async def prepare(data_dir: Path, database_url: str) -> None:
    settings = Settings.from_env(cli_env(data_dir, PROPDEV_DATABASE_URL=database_url))
    db = Database(database_url)
    try:
        await register_partner(settings, db, "streamco", LOOPBACK, adapter="grpc")
        await register_partner(settings, db, "acme", LOOPBACK, adapter="acme")
        directory = Directory(db)
        anna = await db.fetch_one("SELECT id FROM users WHERE username = 'anna'")
        assert anna is not None
        for door, partner, device in (
            (STREAM_DOOR, "streamco", STREAM_DEVICE),
            (ACME_DOOR, "acme", ACME_DEVICE),
        ):
            await directory.put_access_point(
                AccessPoint(door, door, "door", SITE[0], "bld-a", partner, device)
            )
            await directory.grant(str(anna["id"]), door)
    finally:
        await db.close()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    ports = [free_port() for _ in NAMES]
    async with three_nodes(
        tmp_path, prepare=prepare, per_node=lambda i: {"PROPDEV_GRPC_PORT": str(ports[i])}
    ) as running:
        yield running


def channel(cluster: Cluster, node: Node, partner: str) -> grpc.aio.Channel:
    pki = cluster.data_dir / "pki"
    paths = partner_paths(pki, partner)
    credentials = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(), paths.key.read_bytes(), paths.cert.read_bytes()
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{node.env['PROPDEV_GRPC_PORT']}", credentials)


async def partner_token(cluster: Cluster, partner: str) -> tuple[tuple[str, str], ...]:
    async with partner_client(cluster.nodes[0].url, cluster.data_dir, partner) as client:
        return (("authorization", f"Bearer {await client.token()}"),)


def result_event(command_id: str) -> partner_pb2.DeviceEvent:
    at = Timestamp()
    at.FromDatetime(dt.datetime.now(dt.UTC))
    return partner_pb2.DeviceEvent(
        event_id=uuid.uuid4().hex,
        device_id=STREAM_DEVICE,
        type="command_result",
        occurred_at=at,
        ticket=command_id,
        result="done",
    )


async def command_of(cluster: Cluster, node: Node, command_id: str) -> dict[str, Any]:
    async with cluster.http.get(
        f"{node.url}/api/v1/commands/{command_id}",
        headers={"Authorization": f"Bearer {await cluster.token('anna')}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_a_grpc_command_reaches_the_partner_s_stream_on_another_node_and_its_result_the_owner(
    cluster: Cluster,
) -> None:
    owner = cluster.node(str(await cluster.owner_of(STREAM_DOOR)))
    streams_at, events_at = (n for n in cluster.nodes if n is not owner)
    metadata = await partner_token(cluster, "streamco")
    async with (
        channel(cluster, streams_at, "streamco") as commands_channel,
        channel(cluster, events_at, "streamco") as events_channel,
    ):
        commands = partner_pb2_grpc.PartnerGatewayStub(commands_channel).Commands(
            partner_pb2.CommandsRequest(), metadata=metadata
        )
        assert ("propdev-commands", "attached") in tuple(await commands.initial_metadata())
        key = f"{cluster.namespace}:grpc-streams:streamco"
        await eventually(
            lambda: cluster.redis.hget(key, streams_at.name), within=5, what="stream announced"
        )
        events = partner_pb2_grpc.PartnerGatewayStub(events_channel).StreamEvents(metadata=metadata)

        async def owner_knows_the_stream_node() -> bool:
            # The owner routes to a stream on a node its own membership view holds, which can
            # trail the registry's member set by a heartbeat after the cluster starts.
            view = await nodes_view(cluster, owner)
            return streams_at.name in {n["id"] for n in view["nodes"]}

        await eventually(owner_knows_the_stream_node, within=10, what="the owner sees the node")

        # anna opens through the node holding the stream; the door's owner sends the command.
        opening = asyncio.create_task(cluster.open(streams_at, "anna", STREAM_DOOR))
        command = await asyncio.wait_for(commands.read(), timeout=10)
        assert (command.device_id, command.action) == (STREAM_DEVICE, partner_pb2.Command.OPEN)
        # Its result goes in through the third node's event stream.
        await events.write(result_event(command.command_id))
        ack = await asyncio.wait_for(events.read(), timeout=10)
        assert (ack.outcome, ack.reason) == (Ack.ACCEPTED, "")
        status, body = await asyncio.wait_for(opening, timeout=15)
        await events.done_writing()
        commands.cancel()

    assert status == 200, body
    assert body["command_id"] == command.command_id
    assert (await command_of(cluster, owner, command.command_id))["status"] == "confirmed"
    served = (await nodes_view(cluster, owner))["stats"]["served"]
    assert served >= 1  # the result, handed to the owner over its inbox
    assert (await nodes_view(cluster, streams_at))["stats"]["served"] >= 1  # the command


async def test_acme_s_confirmation_reaching_a_non_owner_completes_the_open_on_the_owner(
    cluster: Cluster,
) -> None:
    owner = cluster.node(str(await cluster.owner_of(ACME_DOOR)))
    assert owner.name != "n1"  # the simulator's callbacks go to n1
    other = next(n for n in cluster.nodes if n is not owner and n.name != "n1")

    status, body = await cluster.open(other, "anna", ACME_DOOR)

    assert status == 200, body
    lifecycle = await command_of(cluster, owner, body["command_id"])
    assert lifecycle["status"] == "confirmed"
    assert (await nodes_view(cluster, cluster.node("n1")))["stats"]["forwarded"] >= 1
    async with cluster.http.get(f"{cluster.sim_url}/sim/acme/v1/commands") as resp:
        sent = await resp.json()
    assert [c["request_id"] for c in sent] == [body["command_id"]]
