"""What a push says, in the account's language (``users.locale``: ``ru`` by default, or ``en``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_LOCALE = "ru"

TITLES: Mapping[str, Mapping[str, str]] = {
    "ru": {
        "access.automatic": "Шлагбаум открыт для вашей машины",
        "pass.used": "Вашим гостевым пропуском воспользовались",
        "access.failed": "Не удалось открыть",
        "device.offline": "Устройство не на связи",
    },
    "en": {
        "access.automatic": "Barrier opened for your car",
        "pass.used": "Your guest pass was used",
        "access.failed": "Could not open",
        "device.offline": "Device offline",
    },
}

BODIES: Mapping[str, Mapping[str, str]] = {
    "ru": {
        "access.automatic": "{access_point_id} · номер …{plate_hint}",
        "pass.used": "{access_point_id} · использований: {uses} из {max_uses}",
        "access.failed": "{access_point_id}: устройство не ответило, попробуйте ещё раз",
        "device.offline": "{access_point} ({site}): вендор сообщил, что устройство не на связи",
    },
    "en": {
        "access.automatic": "{access_point_id} · plate …{plate_hint}",
        "pass.used": "{access_point_id} · used {uses} of {max_uses}",
        "access.failed": "{access_point_id}: the device did not answer, try again",
        "device.offline": "{access_point} ({site}): the vendor reports the device offline",
    },
}


@dataclass(frozen=True, slots=True)
class PushMessage:
    """One push as every provider sends it: a title, a body, string data, a collapse id (the
    same for every delivery of one event, so a duplicate replaces rather than repeats)."""

    title: str
    body: str
    data: dict[str, str]
    collapse_id: str


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def collapse_id(event_id: int) -> str:
    """≤ 32 base64url characters (Web Push ``Topic``), ≤ 64 bytes (``apns-collapse-id``)."""
    return f"ev{event_id}"


def render(event: Mapping[str, Any], locale: str | None) -> PushMessage:
    """The push of one stored event (as ``storage.events`` renders it) in ``locale``. An event
    that names its ``collapse_id`` (a staff push, ``propdev.push.staff``) keeps it."""
    lang = locale if locale is not None and locale in TITLES else DEFAULT_LOCALE
    kind = str(event.get("type", ""))
    title = TITLES[lang].get(kind, kind)
    body = BODIES[lang].get(kind, "{access_point_id}").format_map(_Blank(event))
    data = {
        k: str(event[k])
        for k in ("id", "type", "access_point_id", "site_id", "command_id", "occurred_at")
        if event.get(k) is not None
    }
    named = event.get("collapse_id")
    collapse = named if isinstance(named, str) else collapse_id(int(event["id"]))
    return PushMessage(title, body, data, collapse)


__all__ = ("DEFAULT_LOCALE", "PushMessage", "collapse_id", "render")
