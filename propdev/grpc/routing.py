"""Commands for gRPC partners across a cluster: to the node where the partner's stream is.

A partner keeps its ``Commands`` stream open on whichever node its connection reached, while
the open that sends a command runs on the door's owner. Each node writes how many streams of
each partner it holds to the Redis hash ``<namespace>:grpc-streams:<partner>`` (node id →
count, on every attach and detach); a command no local stream can take is sent to those
nodes, live members only, one after another, as a ``PartnerCommand`` over their inboxes
(``Inbox.ask`` to target ``grpc:<partner>``), until one's stream takes it. The partner's
``command_result`` then comes back on any node and goes to the door's owner
(``CommandResult``), where the open waits.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import structlog
from redis import exceptions as redis_errors

from propdev.actors.messages import PartnerCommand
from propdev.grpc.commands import CommandStreams, DeviceCommand
from propdev.registry import RegistryError

if TYPE_CHECKING:
    from propdev.registry import Cluster

log = structlog.get_logger()

ANNOUNCE_WITHIN = 2.0
TARGET = "grpc:"


class ClusterCommands:
    """Wires a node's ``CommandStreams`` to the cluster (``install``)."""

    def __init__(self, cluster: Cluster, streams: CommandStreams) -> None:
        self._cluster = cluster
        self._streams = streams

    def install(self) -> None:
        self._streams.announce = self.announce
        self._streams.forward = self.forward
        self._cluster.handle(PartnerCommand, self._serve)

    def _key(self, partner_id: str) -> str:
        return f"{self._cluster.namespace}:grpc-streams:{partner_id}"

    async def announce(self, partner_id: str, count: int) -> None:
        """Record how many of the partner's streams this node holds (0: none)."""
        redis, key, node = self._cluster.redis, self._key(partner_id), self._cluster.node_id
        try:
            async with asyncio.timeout(ANNOUNCE_WITHIN):
                if count:
                    await redis.hset(key, node, count)
                else:
                    await redis.hdel(key, node)
        except (TimeoutError, redis_errors.RedisError, OSError) as exc:
            log.warning("grpc_streams_not_announced", partner=partner_id, error=str(exc))

    async def holders(self, partner_id: str) -> list[str]:
        """The other live nodes that said they hold a stream of the partner."""
        raw = await self._cluster.redis.hgetall(self._key(partner_id))
        members = self._cluster.membership.members()
        found = [(k.decode() if isinstance(k, bytes) else str(k), int(v)) for k, v in raw.items()]
        return sorted(
            node
            for node, count in found
            if count > 0 and node != self._cluster.node_id and node in members
        )

    async def forward(self, partner_id: str, command: DeviceCommand) -> bool:
        """Send ``command`` to a node holding one of the partner's streams; False if none
        took it before the command's deadline."""
        try:
            nodes = await self.holders(partner_id)
        except (redis_errors.RedisError, OSError) as exc:
            log.warning("grpc_streams_unknown", partner=partner_id, error=str(exc))
            return False
        message = PartnerCommand(
            partner_id,
            command.command_id,
            command.device_id,
            command.action,
            command.issued_at,
            command.deadline,
            command.traceparent,
        )
        for node in nodes:
            left = command.deadline - time.time()
            if left <= 0:
                break
            try:
                taken = await self._cluster.inbox.ask(node, TARGET + partner_id, message, left)
            except (RegistryError, TimeoutError) as exc:
                log.warning(
                    "grpc_command_not_forwarded", partner=partner_id, node=node, error=str(exc)
                )
                continue
            if taken is True:
                log.info(
                    "grpc_command_forwarded",
                    partner=partner_id,
                    command_id=command.command_id,
                    node=node,
                )
                return True
        return False

    async def _serve(self, target: str, message: object) -> object:
        """Another node's command: to a stream of the partner here (never forwarded again)."""
        assert isinstance(message, PartnerCommand)
        command = DeviceCommand(
            message.command_id,
            message.device_id,
            message.action,
            message.issued_at,
            message.deadline,
            message.traceparent,
        )
        return self._streams.send(message.partner_id, command)
