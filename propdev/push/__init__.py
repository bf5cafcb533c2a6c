"""Push to phones: device tokens (residents' and staff's), the outbox written with each event
(and with each device-offline report, for the staff who opted in), the sender, and the FCM,
APNs and Web Push providers behind one ``PushProvider`` protocol."""

from propdev.push.apns import ApnsProvider
from propdev.push.errors import (
    InvalidPushTokenError,
    PushConfigError,
    PushError,
    PushTokenNotFoundError,
    PushUnavailableError,
)
from propdev.push.fcm import FcmProvider, ServiceAccount
from propdev.push.outbox import HOLD, LEASE, PUSHED, Delivery, Outbox, sync_enqueue
from propdev.push.provider import PushProvider, SendResult, Verdict
from propdev.push.sender import PushSender, backoff
from propdev.push.setup import providers_from
from propdev.push.staff import (
    DEVICE_OFFLINE,
    NO_EVENT,
    PushPreferences,
    enqueue_offline,
    offline_collapse_id,
)
from propdev.push.texts import PushMessage, collapse_id, render
from propdev.push.tls import client_context
from propdev.push.tokens import LOCALES, PLATFORMS, PushToken, PushTokens, sync_forget
from propdev.push.webpush import WebPushProvider, application_server_key

__all__ = (
    "DEVICE_OFFLINE",
    "HOLD",
    "LEASE",
    "LOCALES",
    "NO_EVENT",
    "PLATFORMS",
    "PUSHED",
    "ApnsProvider",
    "Delivery",
    "FcmProvider",
    "InvalidPushTokenError",
    "Outbox",
    "PushConfigError",
    "PushError",
    "PushMessage",
    "PushPreferences",
    "PushProvider",
    "PushSender",
    "PushToken",
    "PushTokenNotFoundError",
    "PushTokens",
    "PushUnavailableError",
    "SendResult",
    "ServiceAccount",
    "Verdict",
    "WebPushProvider",
    "application_server_key",
    "backoff",
    "client_context",
    "collapse_id",
    "enqueue_offline",
    "offline_collapse_id",
    "providers_from",
    "render",
    "sync_enqueue",
    "sync_forget",
)
