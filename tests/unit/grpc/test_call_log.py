"""The gRPC call log: a real grpc.aio server with the interceptor, unary and streaming methods."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from propdev.grpc import partner_pb2
from propdev.grpc.call_log import CallLogInterceptor, note_caller
from propdev.http.partner_auth import PartnerCaller
from propdev.observability.tracing import Tracing

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = "test.Probe"


async def greet(request: partner_pb2.DeviceEvent, context: Context) -> partner_pb2.EventAck:
    note_caller(PartnerCaller("acme", "127.0.0.1"))
    return partner_pb2.EventAck(event_id=request.event_id)


async def refuse(request: partner_pb2.DeviceEvent, context: Context) -> partner_pb2.EventAck:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
    raise AssertionError("abort raises")


async def wait(
    request: partner_pb2.DeviceEvent, context: Context
) -> AsyncIterator[partner_pb2.EventAck]:
    note_caller(PartnerCaller("acme", "127.0.0.1"))
    yield partner_pb2.EventAck(event_id=request.event_id)
    await asyncio.Event().wait()  # like Commands: until the partner goes away
    yield partner_pb2.EventAck()


async def echo(
    requests: AsyncIterator[partner_pb2.DeviceEvent], context: Context
) -> AsyncIterator[partner_pb2.EventAck]:
    note_caller(PartnerCaller("acme", "127.0.0.1"))
    async for event in requests:
        yield partner_pb2.EventAck(event_id=event.event_id, sequence=1)


def _serializers() -> dict[str, Any]:
    return {
        "request_deserializer": partner_pb2.DeviceEvent.FromString,
        "response_serializer": partner_pb2.EventAck.SerializeToString,
    }


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[CallLogInterceptor(Tracing())])
    handlers = {
        "Greet": grpc.unary_unary_rpc_method_handler(greet, **_serializers()),
        "Refuse": grpc.unary_unary_rpc_method_handler(refuse, **_serializers()),
        "Echo": grpc.stream_stream_rpc_method_handler(echo, **_serializers()),
        "Wait": grpc.unary_stream_rpc_method_handler(wait, **_serializers()),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as open_channel:
            yield open_channel
    finally:
        await server.stop(0)


def _method(channel: grpc.aio.Channel, name: str, kind: str = "unary_unary") -> Any:
    return getattr(channel, kind)(
        f"/{SERVICE}/{name}",
        request_serializer=partner_pb2.DeviceEvent.SerializeToString,
        response_deserializer=partner_pb2.EventAck.FromString,
    )


def _records(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in logs if r["event"] == "integration_request"]


async def test_a_unary_call_is_one_record_with_who_what_where_and_outcome(
    channel: grpc.aio.Channel,
) -> None:
    with capture_logs([merge_contextvars]) as logs:
        reply = await _method(channel, "Greet")(
            partner_pb2.DeviceEvent(event_id="e-1"), metadata=(("x-request-id", "probe-1"),)
        )
    assert reply.event_id == "e-1"
    [record] = _records(logs)
    assert record["api"] == "partner" and record["method"] == "POST"
    assert record["route"] == f"/{SERVICE}/Greet"
    assert record["status"] == 200 and record["outcome"] == "ok" and record["grpc_code"] == "OK"
    assert record["stream"] is None and record["request_id"] == "probe-1"
    assert record["subject"] == record["partner"] == record["client_id"] == "acme"
    assert record["client_ip"] == "127.0.0.1" and record["latency_ms"] >= 0
    assert (record["messages_in"], record["messages_out"]) == (1, 1)
    assert record["bytes_in"] > 0 and record["bytes_out"] > 0
    assert record["cert_thumbprint"] is None  # no TLS on this test channel


async def test_an_aborted_unary_call_records_its_status_and_no_caller(
    channel: grpc.aio.Channel,
) -> None:
    with capture_logs([merge_contextvars]) as logs, pytest.raises(grpc.aio.AioRpcError) as refused:
        await _method(channel, "Refuse")(partner_pb2.DeviceEvent(event_id="e-2"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    [record] = _records(logs)
    assert record["grpc_code"] == "PERMISSION_DENIED" and record["status"] == 403
    assert record["outcome"] == "rejected" and record["subject"] is None
    assert len(record["request_id"]) == 32  # none given: a new one


async def test_a_stream_is_recorded_when_it_opens_and_when_it_closes_with_counts(
    channel: grpc.aio.Channel,
) -> None:
    with capture_logs([merge_contextvars]) as logs:
        call = _method(channel, "Echo", "stream_stream")()
        for n in range(3):
            await call.write(partner_pb2.DeviceEvent(event_id=f"e-{n}"))
            assert (await call.read()).event_id == f"e-{n}"
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
    opened, closed = _records(logs)
    assert (opened["stream"], opened["status"], opened["partner"]) == ("open", 200, "acme")
    assert (opened["messages_in"], opened["messages_out"]) == (0, 0)
    assert (closed["stream"], closed["grpc_code"], closed["outcome"]) == ("close", "OK", "ok")
    assert (closed["messages_in"], closed["messages_out"]) == (3, 3)
    assert closed["request_id"] == opened["request_id"]
    assert closed["latency_ms"] >= opened["latency_ms"]


async def test_a_stream_the_client_leaves_closes_as_cancelled(
    channel: grpc.aio.Channel,
) -> None:
    with capture_logs([merge_contextvars]) as logs:
        call = _method(channel, "Wait", "unary_stream")(partner_pb2.DeviceEvent(event_id="e-1"))
        assert (await call.read()).event_id == "e-1"
        call.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(_records(logs)) < 2:  # the server sees the cancel a moment later
            assert loop.time() < deadline, _records(logs)
            await asyncio.sleep(0.01)
    opened, closed = _records(logs)
    assert opened["stream"] == "open"
    assert (closed["stream"], closed["grpc_code"], closed["status"]) == ("close", "CANCELLED", 499)
    assert (closed["messages_in"], closed["messages_out"]) == (1, 1)
