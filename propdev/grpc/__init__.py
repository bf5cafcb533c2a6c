"""gRPC for partners with many devices: ``partner.proto`` (generated ``partner_pb2*``), the
``PartnerGateway`` service (event stream in, command stream out) and its mTLS listener."""

from __future__ import annotations

from propdev.grpc.commands import (
    ADAPTER,
    CommandStreams,
    DeviceCommand,
    GrpcPartnerAdapter,
    build_grpc_gateway,
)
from propdev.grpc.server import GrpcServer, start_grpc_server

__all__ = (
    "ADAPTER",
    "CommandStreams",
    "DeviceCommand",
    "GrpcPartnerAdapter",
    "GrpcServer",
    "build_grpc_gateway",
    "start_grpc_server",
)
