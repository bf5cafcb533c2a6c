"""The ``integration_request`` record for every gRPC call, as for the REST integration APIs.

``CallLogInterceptor`` wraps each method handler of the server. A unary call gives one record
when it ends. A streaming call gives two: ``stream: "open"`` once the servicer has
authenticated the partner (``note_caller``; a call refused before that has no open record),
and ``stream: "close"`` when it ends, with the messages and bytes of both directions. The
record has the HTTP record's fields (``propdev.http.integration_log``) -- ``api`` is
``partner``, ``method`` ``POST`` (gRPC's HTTP/2 method), ``route`` the gRPC method path,
``status`` the HTTP equivalent of the gRPC status (as grpc-gateway maps them) -- plus
``grpc_code``, ``stream``, ``messages_in`` and ``messages_out``.

Each call runs in a server span (a child of the caller's ``traceparent`` metadata, if any) and
with a ``request_id`` (the caller's ``x-request-id``, if printable and short, else a new one)
bound to the logging context, so its records, and those of the work it does, carry both.
Nothing of the messages is logged: counts and sizes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from propdev.grpc.auth import peer_address, peer_certificate
from propdev.http.integration_log import log_integration_request
from propdev.http.middlewares import valid_request_id
from propdev.http.partner_auth import PartnerCaller
from propdev.ids import new_hex_id
from propdev.observability.tracing import Tracing, mark_error
from propdev.security import certificate_thumbprint

Context = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]  # generic in the stubs only

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


@dataclass(slots=True)
class _Call:
    """What is known of one call so far."""

    route: str
    context: Context
    streaming: bool
    started: float = field(default_factory=time.perf_counter)
    caller: PartnerCaller | None = None
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def record(self, code: grpc.StatusCode, stream: str | None) -> None:
        context = self.context
        der = peer_certificate(context)
        partner = self.caller.partner_id if self.caller is not None else None
        log_integration_request(
            api="partner",
            method="POST",
            route=self.route,
            status=HTTP_STATUS.get(code, 500),
            latency_s=time.perf_counter() - self.started,
            client_ip=peer_address(context.peer()),
            subject=partner,
            client_id=partner,
            partner=partner,
            cert_thumbprint=certificate_thumbprint(der) if der is not None else None,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            grpc={
                "grpc_code": code.name,
                "stream": stream,
                "messages_in": self.messages_in,
                "messages_out": self.messages_out,
            },
        )


_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("grpc_call", default=None)


def note_caller(caller: PartnerCaller) -> None:
    """The servicer has authenticated the call's partner: a stream's ``open`` record."""
    call = _CURRENT.get()
    if call is None or call.caller is not None:
        return
    call.caller = caller
    if call.streaming:
        call.record(grpc.StatusCode.OK, "open")


def _size(message: Any) -> int:
    byte_size = getattr(message, "ByteSize", None)
    return int(byte_size()) if byte_size is not None else 0


def _code(context: Context, exc: BaseException | None) -> grpc.StatusCode:
    """The status a call ends with: what the servicer set or aborted with, else CANCELLED (the
    client went away while the servicer waited), UNKNOWN (an exception) or OK."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN


def _request_id(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and valid_request_id(value):
            return value
    return new_hex_id()


def _traceparent(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent" and isinstance(value, str):
            return value
    return None


class CallLogInterceptor(grpc.aio.ServerInterceptor):
    """One ``integration_request`` per unary call, two per stream (see the module docstring)."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED itself
            return handler
        route = str(handler_call_details.method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(route, handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(route, handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(route, handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(route, handler.stream_stream),
            handler.request_deserializer,
            handler.response_serializer,
        )

    @contextlib.contextmanager
    def _scope(self, call: _Call) -> Iterator[None]:
        """The call's span and logging context; its record when it ends."""
        context = call.context
        with (
            self._tracing.server_span(
                f"grpc {call.route}", _traceparent(context), {"rpc.method": call.route}
            ) as span,
            structlog.contextvars.bound_contextvars(request_id=_request_id(context)),
        ):
            token = _CURRENT.set(call)
            exc: BaseException | None = None
            try:
                yield
            except BaseException as error:
                exc = error
                raise
            finally:
                _CURRENT.reset(token)
                code = _code(context, exc)
                call.record(code, "close" if call.streaming else None)
                if span.is_recording() and HTTP_STATUS.get(code, 500) >= 500:
                    mark_error(span, f"gRPC {code.name}")

    def _counted(self, call: _Call, requests: Any) -> Any:
        if not hasattr(requests, "__aiter__"):  # a unary request
            call.messages_in, call.bytes_in = 1, _size(requests)
            return requests

        async def counting() -> AsyncIterator[Any]:
            async for message in requests:
                call.messages_in += 1
                call.bytes_in += _size(message)
                yield message

        return counting()

    def _unary(self, route: str, behavior: Any) -> Any:
        async def wrapped(request: Any, context: Context) -> Any:
            call = _Call(route, context, streaming=False)
            with self._scope(call):
                response = await behavior(self._counted(call, request), context)
                call.messages_out, call.bytes_out = 1, _size(response)
                return response

        return wrapped

    def _streaming(self, route: str, behavior: Any) -> Any:
        async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
            call = _Call(route, context, streaming=True)
            with self._scope(call):
                async for response in behavior(self._counted(call, request), context):
                    call.messages_out += 1
                    call.bytes_out += _size(response)
                    yield response

        return wrapped
