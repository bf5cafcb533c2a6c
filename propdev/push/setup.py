"""The providers a node's settings configure (none: tokens are kept, pushes wait unsent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from propdev.push.apns import ApnsProvider, load_key
from propdev.push.errors import PushConfigError
from propdev.push.fcm import FcmProvider, ServiceAccount
from propdev.push.provider import PushProvider
from propdev.push.tls import client_context
from propdev.push.webpush import WebPushProvider, load_vapid

if TYPE_CHECKING:
    from propdev.config import Settings


def providers_from(settings: Settings) -> dict[str, PushProvider]:
    """FCM, APNs and Web Push as far as ``settings`` give their credentials."""
    found: dict[str, PushProvider] = {}
    extra = settings.extra_ca_file
    if settings.fcm_credentials is not None:
        found["fcm"] = FcmProvider(
            ServiceAccount.from_file(settings.fcm_credentials),
            base_url=settings.fcm_url,
            ssl_context=client_context(extra),
        )
    if settings.apns_key_file is not None:
        missing = [
            name
            for name, value in (
                ("PROPDEV_APNS_KEY_ID", settings.apns_key_id),
                ("PROPDEV_APNS_TEAM_ID", settings.apns_team_id),
                ("PROPDEV_APNS_TOPIC", settings.apns_topic),
            )
            if not value
        ]
        if missing:
            raise PushConfigError(f"PROPDEV_APNS_KEY_FILE is set: also set {', '.join(missing)}")
        assert settings.apns_key_id and settings.apns_team_id and settings.apns_topic
        found["apns"] = ApnsProvider(
            load_key(settings.apns_key_file),
            key_id=settings.apns_key_id,
            team_id=settings.apns_team_id,
            topic=settings.apns_topic,
            base_url=settings.apns_url,
            ssl_context=client_context(extra, http2=True),
        )
    if settings.vapid_private_key_file is not None:
        found["webpush"] = WebPushProvider(
            load_vapid(settings.vapid_private_key_file), ssl_context=client_context(extra)
        )
    return found


__all__ = ("providers_from",)
