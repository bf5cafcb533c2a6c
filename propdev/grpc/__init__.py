"""gRPC for partners with many devices: ``partner.proto`` (generated ``partner_pb2*``), the
``PartnerGateway`` service (event stream in, command stream out) and its mTLS listener.

``GrpcServer`` and ``start_grpc_server`` are loaded on first use: they import ``grpc`` and
protobuf, which a node without ``PROPDEV_GRPC_PORT`` never needs (a tenth of its start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from propdev.grpc.commands import (
    ADAPTER,
    CommandStreams,
    DeviceCommand,
    GrpcPartnerAdapter,
    build_grpc_gateway,
)
from propdev.grpc.routing import ClusterCommands

if TYPE_CHECKING:
    from propdev.grpc.server import GrpcServer, start_grpc_server

__all__ = (
    "ADAPTER",
    "ClusterCommands",
    "CommandStreams",
    "DeviceCommand",
    "GrpcPartnerAdapter",
    "GrpcServer",
    "build_grpc_gateway",
    "start_grpc_server",
)

_LAZY = frozenset({"GrpcServer", "start_grpc_server"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("propdev.grpc.server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
