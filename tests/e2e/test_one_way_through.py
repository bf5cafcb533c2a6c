"""One way through: every credential that opens a door goes through the one opening pipeline.

A resident's tap, an operator's manual open, a plate and a guest-pass code posted by the partner
over HTTPS (mTLS, bound token, signed body), and a plate streamed over gRPC: each reaches
``Opening.open`` of the node (watched here) inside the door's device actor, and each is decided,
commanded, recorded and answered by it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from propdev.access import OpenOutcome, OpenRequest, Via
from propdev.grpc import partner_pb2, partner_pb2_grpc
from propdev.node import Node
from propdev.pki import partner_paths
from propdev.storage.directory import AccessPoint
from tests.conftest import free_port
from tests.e2e.conftest import RunningNode, node_settings, running_node
from tests.support.partner import event, partner_client

DOOR, BARRIER = "ap-a-entrance", "ap-parking"  # anna may open both
PLATE = "A123BC77"


class Watched:
    """The node's running opening pipeline, each call recorded with its outcome."""

    def __init__(self, node: Node) -> None:
        self.calls: list[tuple[Via, str, OpenOutcome]] = []
        opening = node.access.opening
        real = opening.open

        async def open(
            point: AccessPoint, request: OpenRequest, *args: Any, **kwargs: Any
        ) -> OpenOutcome:
            outcome = await real(point, request, *args, **kwargs)
            self.calls.append((request.via, point.id, outcome))
            return outcome

        opening.open = open  # type: ignore[method-assign]  # the device actors call this one


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[RunningNode, Node, Watched]]:
    settings = node_settings(tmp_path, PROPDEV_GRPC_PORT=str(free_port()))
    nodes: list[Node] = []
    async with running_node(settings, on_node=nodes.append) as running:
        yield running, nodes[0], Watched(nodes[0])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(r: RunningNode, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    async with r.http.post(f"{r.url}{path}", json=body, headers=bearer(token)) as resp:
        return resp.status, await resp.json()


def grpc_plate(device_id: str, plate: str) -> partner_pb2.DeviceEvent:
    at = Timestamp()
    at.FromDatetime(dt.datetime.now(dt.UTC))
    return partner_pb2.DeviceEvent(
        event_id=uuid.uuid4().hex,
        device_id=device_id,
        type="plate_recognized",
        occurred_at=at,
        plate=plate,
    )


async def test_tap_manual_plate_code_and_grpc_each_go_through_the_one_opening_pipeline(
    site: tuple[RunningNode, Node, Watched],
) -> None:
    r, node, watched = site
    anna = await r.token_for("anna")
    operator = await r.token_for(r.credentials["operator"]["username"])
    assert (await post(r, "/api/v1/vehicles", anna, {"plate": PLATE}))[0] == 201
    now = dt.datetime.now(dt.UTC)
    status, issued = await post(
        r,
        "/api/v1/guest-passes",
        anna,
        {
            "access_point_ids": [DOOR],
            "valid_from": (now - dt.timedelta(minutes=1)).isoformat(),
            "valid_until": (now + dt.timedelta(hours=1)).isoformat(),
            "max_uses": 2,
        },
    )
    assert status == 201

    # 1. a tap in the app; 2. an operator's manual open with a reason
    tapped = await post(r, f"/api/v1/access-points/{DOOR}/open", anna)
    manual = await post(
        r, f"/admin/api/v1/access-points/{DOOR}/open", operator, {"reason": "courier at the door"}
    )
    assert (tapped[0], manual[0]) == (200, 200)
    # 3. a plate and 4. a code, posted by the partner as it does (mTLS, bound token, signature)
    async with partner_client(r.url, r.settings.data_dir, "simulator") as partner:
        token = await partner.token()
        status, body = await partner.post(
            [
                event("sim-barrier-1", "plate_recognized", plate="A 123 BC 77"),
                event("sim-door-1", "pass_presented", code=issued["code"]),
            ],
            token=token,
        )
        assert (status, body["accepted"]) == (202, 2), body
        # 5. a plate streamed over gRPC (mTLS, the same bound token)
        paths = partner_paths(r.settings.pki_dir, "simulator")
        credentials = grpc.ssl_channel_credentials(
            (r.settings.pki_dir / "ca.pem").read_bytes(),
            paths.key.read_bytes(),
            paths.cert.read_bytes(),
        )
        assert node.grpc_port is not None
        async with grpc.aio.secure_channel(f"127.0.0.1:{node.grpc_port}", credentials) as channel:
            call = partner_pb2_grpc.PartnerGatewayStub(channel).StreamEvents(
                metadata=(("authorization", f"Bearer {token}"),)
            )
            await call.write(grpc_plate("sim-barrier-1", "A123BC77"))
            ack = await call.read()
            await call.done_writing()
            assert ack.outcome == partner_pb2.EventAck.ACCEPTED

    assert [(via, point, outcome.result.value) for via, point, outcome in watched.calls] == [
        (Via.APP, DOOR, "granted"),
        (Via.MANUAL, DOOR, "granted"),
        (Via.PLATE, BARRIER, "granted"),
        (Via.CODE, DOOR, "granted"),
        (Via.PLATE, BARRIER, "granted"),
    ]
    # The HTTP answers are the pipeline's outcomes, rendered at the edge.
    assert tapped[1]["command_id"] == watched.calls[0][2].command_id
    assert manual[1]["command_id"] == watched.calls[1][2].command_id
    # Each was recorded by it: one audit entry per open, with its command.
    async with r.http.get(
        f"{r.url}/admin/api/v1/audit?limit=500", headers=bearer(operator)
    ) as resp:
        entries = (await resp.json())["entries"]
    opens = [e for e in entries if e["action"] in ("open", "manual_open")]
    assert [e["command_id"] for e in opens] == [c[2].command_id for c in watched.calls]
    assert [e["actor"].split(":")[0] for e in opens] == [
        "user",
        "operator",
        "vehicle",
        "pass",
        "vehicle",
    ]
