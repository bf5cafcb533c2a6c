"""msgpack on the wire: the messages one node sends another, and their replies.

Only the message types that cross nodes are known here; anything else is a ``WireError``.
"""

from __future__ import annotations

from typing import Any

import msgpack

from propdev.access import OpenOutcome
from propdev.actors.messages import (
    CommandResult,
    DeviceEvent,
    DeviceEvents,
    DeviceReports,
    DeviceSnapshot,
    OpenAccessPoint,
    PartnerCommand,
)
from propdev.registry.errors import RemoteError, WireError
from propdev.storage import StoreUnavailableError


class Moved:
    """The reply of a node that does not hold the target's shard: ask the owner again."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Moved()"


MOVED = Moved()


def pack(value: Any) -> bytes:
    try:
        return bytes(msgpack.packb(value, use_bin_type=True))
    except (TypeError, ValueError) as exc:
        raise WireError(f"cannot encode {type(value).__name__}: {exc}") from exc


def unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise WireError(f"cannot decode a message: {exc}") from exc


def encode_message(message: object) -> dict[str, Any]:
    if isinstance(message, OpenAccessPoint):
        return {
            "t": "open",
            "ap": message.access_point_id,
            "u": message.user_id,
            "n": message.username,
            "c": message.command_id,
            "k": message.idempotency_key,
            "tp": message.traceparent,
            "ob": message.on_behalf,
            "no": message.note,
        }
    if isinstance(message, DeviceSnapshot):
        return {"t": "snapshot"}
    if isinstance(message, DeviceEvent):
        return {"t": "event", "e": _event(message)}
    if isinstance(message, DeviceEvents):
        return {"t": "events", "es": [_event(event) for event in message.events]}
    if isinstance(message, DeviceReports):
        return {"t": "reports", "es": [_event(event) for event in message.events]}
    if isinstance(message, CommandResult):
        return {"t": "result", "e": _event(message.event)}
    if isinstance(message, PartnerCommand):
        return {
            "t": "command",
            "p": message.partner_id,
            "c": message.command_id,
            "d": message.device_id,
            "a": message.action,
            "i": message.issued_at,
            "dl": message.deadline,
            "tp": message.traceparent,
        }
    raise WireError(f"{type(message).__name__} does not cross nodes")


def decode_message(data: dict[str, Any]) -> object:
    kind = data.get("t")
    if kind == "open":
        return OpenAccessPoint(
            access_point_id=data["ap"],
            user_id=data["u"],
            username=data["n"],
            command_id=data["c"],
            idempotency_key=data["k"],
            traceparent=data["tp"],
            on_behalf=data.get("ob"),
            note=data.get("no", ""),
        )
    if kind == "snapshot":
        return DeviceSnapshot()
    if kind == "event":
        return _event_of(data["e"])
    if kind == "events":
        return DeviceEvents(tuple(_event_of(event) for event in data["es"]))
    if kind == "reports":
        return DeviceReports(tuple(_event_of(event) for event in data["es"]))
    if kind == "result":
        return CommandResult(_event_of(data["e"]))
    if kind == "command":
        return PartnerCommand(
            partner_id=data["p"],
            command_id=data["c"],
            device_id=data["d"],
            action=data["a"],
            issued_at=data["i"],
            deadline=data["dl"],
            traceparent=data["tp"],
        )
    raise WireError(f"unknown message type {kind!r}")


def _event(event: DeviceEvent) -> list[Any]:
    """A partner event as a list in field order (compact: batches can hold 500)."""
    return [
        event.partner_id,
        event.event_id,
        event.device_id,
        event.type,
        event.occurred_at,
        event.plate,
        event.code,
        event.command_ref,
        event.vendor_command_id,
        event.result,
        event.error,
    ]


def _event_of(fields: list[Any]) -> DeviceEvent:
    if not isinstance(fields, list) or len(fields) != _EVENT_FIELDS:
        raise WireError(f"a device event has {_EVENT_FIELDS} fields: {fields!r}")
    return DeviceEvent(*fields)


_EVENT_FIELDS = 11


def encode_reply(value: object) -> dict[str, Any]:
    if isinstance(value, OpenOutcome):
        return {"t": "outcome", "o": value.to_dict()}
    if isinstance(value, Moved):
        return {"t": "moved"}
    if isinstance(value, BaseException):
        return {"t": "error", "e": type(value).__name__, "d": str(value)}
    return {"t": "value", "v": value}


def decode_reply(data: dict[str, Any]) -> object:
    """The reply's value; a remote failure is raised as ``RemoteError`` (the owner's
    ``StoreUnavailableError`` as itself, so that it is a 503 at the asker too)."""
    kind = data.get("t")
    if kind == "outcome":
        return OpenOutcome.from_dict(data["o"])
    if kind == "moved":
        return MOVED
    if kind == "value":
        return data["v"]
    if kind == "error":
        if data.get("e") == StoreUnavailableError.__name__:  # the owner's store is down
            raise StoreUnavailableError(f"on the owner: {data.get('d')}")
        raise RemoteError(f"{data.get('e')}: {data.get('d')}")
    raise WireError(f"unknown reply type {kind!r}")
