"""The node's gRPC listener (grpc.aio, in the node's event loop): mutual TLS with the node's
server certificate, client certificates required and verified against the project CA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import grpc
import structlog

import propdev.grpc.partner_pb2_grpc as partner_pb2_grpc
from propdev.grpc.auth import PartnerAuthenticator
from propdev.grpc.call_log import CallLogInterceptor
from propdev.grpc.commands import GrpcPartnerAdapter
from propdev.grpc.servicer import PartnerService
from propdev.pki import CertPaths, ca_paths

if TYPE_CHECKING:
    from propdev.config import Settings
    from propdev.devices import PartnerEventIngest
    from propdev.grpc.commands import CommandStreams
    from propdev.observability import Telemetry
    from propdev.partners import PartnerGateway
    from propdev.security import TokenVerifier
    from propdev.storage import Database

log = structlog.get_logger()


class GrpcNode(Protocol):
    """What the gRPC listener is built from (``propdev.node``'s ``Node`` satisfies it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def verifier(self) -> TokenVerifier: ...

    @property
    def gateways(self) -> Mapping[str, PartnerGateway]: ...

    @property
    def ingest(self) -> PartnerEventIngest: ...

    @property
    def command_streams(self) -> CommandStreams: ...

    @property
    def telemetry(self) -> Telemetry: ...


@dataclass(slots=True)
class GrpcServer:
    server: grpc.aio.Server
    port: int

    async def stop(self, grace: float = 1.0) -> None:
        await self.server.stop(grace)


def server_credentials(pki_dir_ca: bytes, cert: CertPaths) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(cert.key.read_bytes(), cert.cert.read_bytes())],
        root_certificates=pki_dir_ca,
        require_client_auth=True,
    )


async def start_grpc_server(node: GrpcNode, cert: CertPaths, *, host: str, port: int) -> GrpcServer:
    """Serve the partner service on ``host:port`` (0: a free port) until ``stop()``."""
    settings = node.settings

    def takes_commands(partner_id: str) -> bool:
        gateway = node.gateways.get(partner_id)
        return gateway is not None and isinstance(gateway.adapter, GrpcPartnerAdapter)

    service = PartnerService(
        auth=PartnerAuthenticator(node.db, node.verifier, settings.pki_dir),
        ingest=node.ingest,
        streams=node.command_streams,
        takes_commands=takes_commands,
    )
    # Every call is an integration_request record, like the REST partner API's.
    server = grpc.aio.server(interceptors=[CallLogInterceptor(node.telemetry.tracing)])
    partner_pb2_grpc.add_PartnerGatewayServicer_to_server(service, server)
    ca = ca_paths(settings.pki_dir).cert.read_bytes()
    bound = server.add_secure_port(f"{host}:{port}", server_credentials(ca, cert))
    await server.start()
    log.info("grpc_listening", address=f"{host}:{bound}")
    return GrpcServer(server, bound)
