"""gRPC for partners: events streamed in with an ack each (as POST /partner/v1/events), commands
streamed out to a gRPC-connected partner and confirmed by its event; mTLS + bound token."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from propdev.devkit import LOOPBACK, SITE, register_partner, seed_demo
from propdev.grpc import partner_pb2, partner_pb2_grpc
from propdev.node import Node
from propdev.pki import partner_paths
from propdev.storage import Database
from propdev.storage.directory import AccessPoint, Directory
from tests.conftest import free_port
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.partner import partner_client

DOOR, DEVICE = "ap-a-entrance", "sim-door-1"  # partner simulator (REST-confirmed opens)
STREAM_DOOR, STREAM_DEVICE = "ap-a-stream", "sc-door-1"  # partner streamco (gRPC commands)
Ack = partner_pb2.EventAck


@dataclass
class GrpcNode:
    running: RunningNode
    node: Node

    @property
    def target(self) -> str:
        assert self.node.grpc_port is not None
        return f"127.0.0.1:{self.node.grpc_port}"

    def channel(self, partner: str | None) -> grpc.aio.Channel:
        pki = self.running.settings.pki_dir
        ca = (pki / "ca.pem").read_bytes()
        if partner is None:
            credentials = grpc.ssl_channel_credentials(ca)
        else:
            paths = partner_paths(pki, partner)
            credentials = grpc.ssl_channel_credentials(
                ca, paths.key.read_bytes(), paths.cert.read_bytes()
            )
        return grpc.aio.secure_channel(self.target, credentials)

    async def partner_token(self, partner: str) -> str:
        async with partner_client(
            self.running.url, self.running.settings.data_dir, partner
        ) as client:
            return await client.token()


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def event(device_id: str, type: str, **fields: Any) -> partner_pb2.DeviceEvent:
    at = Timestamp()
    at.FromDatetime(dt.datetime.now(dt.UTC))
    return partner_pb2.DeviceEvent(
        event_id=uuid.uuid4().hex, device_id=device_id, type=type, occurred_at=at, **fields
    )


@pytest.fixture
async def grpc_node(tmp_path: Path) -> AsyncIterator[GrpcNode]:
    settings = node_settings(tmp_path, PROPDEV_GRPC_PORT=str(free_port()))
    db = Database(settings.database_url)
    try:  # before the node starts: a gRPC-connected partner with a door anna may open
        credentials = await seed_demo(settings, db)
        await register_partner(settings, db, "streamco", LOOPBACK, adapter="grpc")
        await register_partner(settings, db, "otherco", LOOPBACK)
        directory = Directory(db)
        await directory.put_access_point(
            AccessPoint(
                STREAM_DOOR,
                "Building A, side door",
                "door",
                SITE[0],
                "bld-a",
                "streamco",
                STREAM_DEVICE,
            )
        )
        anna = next(r for r in credentials["residents"] if r["username"] == "anna")
        await directory.grant(anna["id"], STREAM_DOOR)
    finally:
        await db.close()
    nodes: list[Node] = []
    async with running_node(settings, on_node=nodes.append) as running:
        yield GrpcNode(running, nodes[0])


async def test_events_stream_in_each_acked_accepted_duplicate_or_rejected_alone(
    grpc_node: GrpcNode,
) -> None:
    node = grpc_node.running
    anna = await node.token_for("anna")
    async with node.http.post(
        f"{node.url}/api/v1/access-points/{DOOR}/open", headers=bearer(anna)
    ) as resp:
        assert resp.status == 200
        opened = await resp.json()
    entry = event(DEVICE, "entry", request_id=opened["command_id"])
    sent = [
        entry,
        entry,  # the same event_id again
        event("not-ours", "device_online"),
        event(DEVICE, "plate_recognized"),  # no plate
        event(DEVICE, "device_online"),
    ]
    token = await grpc_node.partner_token("simulator")
    async with grpc_node.channel("simulator") as channel:
        call = partner_pb2_grpc.PartnerGatewayStub(channel).StreamEvents(metadata=metadata(token))
        acks = []
        for message in sent:  # one at a time: each ack before the next event
            await call.write(message)
            acks.append(await call.read())
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
    assert [(a.sequence, a.outcome, a.reason) for a in acks] == [
        (0, Ack.ACCEPTED, ""),
        (1, Ack.DUPLICATE, ""),
        (2, Ack.REJECTED, "unknown_device"),
        (3, Ack.REJECTED, "missing_plate"),
        (4, Ack.ACCEPTED, ""),
    ]
    assert [a.event_id for a in acks] == [m.event_id for m in sent]

    async with node.http.get(f"{node.url}/api/v1/events", headers=bearer(anna)) as resp:
        events = await resp.json()
    entries = [e for e in events if e["type"] == "access.entry"]
    assert [(e["command_id"], e["access_point_id"]) for e in entries] == [
        (opened["command_id"], DOOR)
    ]
    async with node.http.get(f"{node.url}/api/v1/access-points", headers=bearer(anna)) as resp:
        shown = {p["id"]: p for p in await resp.json()}
    assert shown[DOOR]["online"] is True


async def test_an_open_goes_down_the_partner_s_command_stream_and_its_event_confirms_it(
    grpc_node: GrpcNode,
) -> None:
    node = grpc_node.running
    anna = await node.token_for("anna")
    url = f"{node.url}/api/v1/access-points/{STREAM_DOOR}/open"
    async with node.http.post(url, headers=bearer(anna)) as resp:
        assert resp.status == 502  # no command stream open: the vendor is unreachable

    token = await grpc_node.partner_token("streamco")
    async with grpc_node.channel("streamco") as channel:
        stub = partner_pb2_grpc.PartnerGatewayStub(channel)
        commands = stub.Commands(partner_pb2.CommandsRequest(), metadata=metadata(token))
        events = stub.StreamEvents(metadata=metadata(token))
        attached = await commands.initial_metadata()  # sent once the stream is attached
        assert ("propdev-commands", "attached") in tuple(attached)
        assert grpc_node.node.command_streams.connected("streamco") == 1

        async def resident_opens() -> tuple[int, dict[str, Any]]:
            async with node.http.post(url, headers=bearer(anna)) as resp:
                return resp.status, await resp.json()

        opening = asyncio.create_task(resident_opens())
        command = await asyncio.wait_for(commands.read(), timeout=10)
        assert (command.device_id, command.action) == (STREAM_DEVICE, partner_pb2.Command.OPEN)
        assert command.deadline.ToNanoseconds() > command.issued_at.ToNanoseconds()
        result = event(STREAM_DEVICE, "command_result", ticket=command.command_id, result="done")
        await events.write(result)
        assert (await events.read()).outcome == Ack.ACCEPTED
        status, opened = await asyncio.wait_for(opening, timeout=10)
        assert (status, opened["status"], opened["command_id"]) == (
            200,
            "granted",
            command.command_id,
        )
        await events.write(event(STREAM_DEVICE, "entry", request_id=command.command_id))
        assert (await events.read()).outcome == Ack.ACCEPTED
        await events.done_writing()
        commands.cancel()

    async with node.http.get(
        f"{node.url}/api/v1/commands/{opened['command_id']}", headers=bearer(anna)
    ) as resp:
        lifecycle = await resp.json()
    assert [s["step"] for s in lifecycle["steps"]] == [
        "requested",
        "decided",
        "accepted",
        "confirmed",
        "entry",
    ]


async def test_calls_without_the_right_certificate_or_token_are_refused(
    grpc_node: GrpcNode,
) -> None:
    own = await grpc_node.partner_token("simulator")
    other = await grpc_node.partner_token("otherco")
    resident = await grpc_node.running.token_for("anna")

    async def status_of(partner: str | None, token: str | None) -> grpc.StatusCode:
        async with grpc_node.channel(partner) as channel:
            call = partner_pb2_grpc.PartnerGatewayStub(channel).StreamEvents(
                metadata=metadata(token) if token else None, timeout=10
            )
            try:
                await call.write(event(DEVICE, "device_offline"))
                await call.done_writing()
                async for _ in call:
                    pass
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return await call.code()

    # No client certificate: the TLS handshake itself fails.
    assert await status_of(None, own) == grpc.StatusCode.UNAVAILABLE
    assert await status_of("simulator", None) == grpc.StatusCode.UNAUTHENTICATED
    assert await status_of("simulator", "not-a-token") == grpc.StatusCode.UNAUTHENTICATED
    # otherco's token is bound to otherco's certificate, not the simulator's.
    assert await status_of("simulator", other) == grpc.StatusCode.UNAUTHENTICATED
    assert await status_of("otherco", own) == grpc.StatusCode.UNAUTHENTICATED
    assert await status_of("simulator", resident) == grpc.StatusCode.PERMISSION_DENIED
    # None of those reached the device: it was never reported offline.
    anna = await grpc_node.running.token_for("anna")
    async with grpc_node.running.http.get(
        f"{grpc_node.running.url}/api/v1/access-points", headers=bearer(anna)
    ) as resp:
        assert {p["id"]: p for p in await resp.json()}[DOOR]["online"] is None

    # The simulator is a REST partner: no command stream for it.
    async with grpc_node.channel("simulator") as channel:
        commands = partner_pb2_grpc.PartnerGatewayStub(channel).Commands(
            partner_pb2.CommandsRequest(), metadata=metadata(own), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await commands.read()
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
