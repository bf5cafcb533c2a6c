"""gRPC calls to a running node are in the integration log like REST calls: who, what, from
where, outcome, latency, trace id; each stream when it opens and when it closes, with counts."""

from __future__ import annotations

import io

import grpc
from cryptography.hazmat.primitives.serialization import Encoding

from propdev.grpc import partner_pb2, partner_pb2_grpc
from propdev.pki import load_cert, partner_paths
from propdev.security import certificate_thumbprint
from tests.e2e.test_grpc import DEVICE, GrpcNode, event
from tests.e2e.test_grpc import grpc_node as grpc_node  # a fixture
from tests.security.test_integration_log import Records
from tests.security.test_integration_log import json_logs as json_logs  # a fixture

ROUTE = "/propdev.partner.v1.PartnerGateway/StreamEvents"


def _records(records: Records, request_id: str) -> list[dict[str, object]]:
    return [
        r
        for r in records()
        if r["event"] == "integration_request" and r.get("request_id") == request_id
    ]


async def test_a_grpc_event_stream_is_logged_when_it_opens_and_closes_without_secrets(
    grpc_node: GrpcNode, json_logs: tuple[io.StringIO, Records]
) -> None:
    buffer, records = json_logs
    pki = grpc_node.running.settings.pki_dir
    thumbprint = certificate_thumbprint(
        load_cert(partner_paths(pki, "simulator").cert).public_bytes(Encoding.DER)
    )
    token = await grpc_node.partner_token("simulator")
    async with grpc_node.channel("simulator") as channel:
        stub = partner_pb2_grpc.PartnerGatewayStub(channel)
        call = stub.StreamEvents(
            metadata=(("authorization", f"Bearer {token}"), ("x-request-id", "grpc-ok"))
        )
        for _ in range(2):
            await call.write(event(DEVICE, "device_online"))
            assert (await call.read()).outcome == partner_pb2.EventAck.ACCEPTED
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK

        refused = stub.StreamEvents(metadata=(("x-request-id", "grpc-no-token"),))
        await refused.done_writing()
        assert await refused.code() == grpc.StatusCode.UNAUTHENTICATED

    opened, closed = _records(records, "grpc-ok")
    for record in (opened, closed):
        assert record["api"] == "partner" and record["method"] == "POST"
        assert record["route"] == ROUTE and record["partner"] == "simulator"
        assert record["subject"] == "simulator" and record["cert_thumbprint"] == thumbprint
        assert record["client_ip"] == "127.0.0.1" and record["node"] == "test-node"
        assert len(str(record["trace_id"])) == 32 and record["outcome"] == "ok"
    assert (opened["stream"], opened["status"], opened["grpc_code"]) == ("open", 200, "OK")
    assert (closed["stream"], closed["messages_in"], closed["messages_out"]) == ("close", 2, 2)
    assert closed["trace_id"] == opened["trace_id"]
    assert int(str(closed["bytes_in"])) > 0 and int(str(closed["bytes_out"])) > 0

    [no_token] = _records(records, "grpc-no-token")  # refused: no open record, just the end
    assert (no_token["stream"], no_token["grpc_code"]) == ("close", "UNAUTHENTICATED")
    assert (no_token["status"], no_token["outcome"]) == (401, "rejected")
    assert no_token["subject"] is None and no_token["cert_thumbprint"] == thumbprint

    assert token not in buffer.getvalue()
