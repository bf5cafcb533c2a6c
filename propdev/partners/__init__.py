"""Partners: the vendor interface, its adapters (HTTPS, in-process) and the resilience gateway.

The vendor simulators are development tools in ``propdev.devkit``; production code reaches an
in-process vendor only through the ``InProcessVendor`` / ``InProcessAcme`` protocols.
"""

from __future__ import annotations

from propdev.partners.acme import AcmeAdapter, AcmeHttpClient, AcmeInProcessClient, InProcessAcme
from propdev.partners.apikey import api_key_path, vendor_api_key
from propdev.partners.base import DeviceInfo, DeviceKind, DeviceStatus, OpenResult, PartnerAdapter
from propdev.partners.breaker import Breaker
from propdev.partners.callbacks import CallbackSender
from propdev.partners.circuits import CircuitSettings, RedisCircuits
from propdev.partners.confirmations import Confirmation, Confirmations, ConfirmsByCallback
from propdev.partners.credentials import ApiKey, ClientCredentialsToken, Credential, OAuthClient
from propdev.partners.errors import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
    RateLimitedError,
    SigningKeyError,
    UnknownAdapterError,
)
from propdev.partners.gateway import (
    SIMULATOR_PARTNER_ID,
    CallObserver,
    PartnerGateway,
    build_acme_gateway,
    build_gateway,
    guarded,
)
from propdev.partners.guard import LATENCY_WINDOW, CallGuard, StateListener
from propdev.partners.httpsig import (
    PartnerKey,
    RequestSigner,
    RequestVerifier,
    partner_key,
    request_signer,
    request_verifier,
    signing_key_path,
)
from propdev.partners.inprocess import (
    ConnectionDropped,
    InProcessAdapter,
    InProcessVendor,
    VendorAnswer,
    VendorError,
)
from propdev.partners.plugins import BUILTINS, GROUP, AdapterClass, Adapters, AdapterSpec
from propdev.partners.session import PartnerSession
from propdev.partners.signing import sign_callback, verify_callback, webhook_secret
from propdev.partners.vendor import VendorHttpAdapter

__all__ = (
    "BUILTINS",
    "GROUP",
    "LATENCY_WINDOW",
    "SIMULATOR_PARTNER_ID",
    "AcmeAdapter",
    "AcmeHttpClient",
    "AcmeInProcessClient",
    "AdapterClass",
    "AdapterSpec",
    "Adapters",
    "ApiKey",
    "Breaker",
    "BulkheadFullError",
    "CallGuard",
    "CallObserver",
    "CallbackSender",
    "CircuitOpenError",
    "CircuitSettings",
    "ClientCredentialsToken",
    "Confirmation",
    "Confirmations",
    "ConfirmsByCallback",
    "ConnectionDropped",
    "Credential",
    "DeviceInfo",
    "DeviceKind",
    "DeviceStatus",
    "InProcessAcme",
    "InProcessAdapter",
    "InProcessVendor",
    "OAuthClient",
    "OpenResult",
    "PartnerAdapter",
    "PartnerError",
    "PartnerGateway",
    "PartnerKey",
    "PartnerRefusedError",
    "PartnerSession",
    "PartnerTimeoutError",
    "PartnerUnavailableError",
    "RateLimitedError",
    "RedisCircuits",
    "RequestSigner",
    "RequestVerifier",
    "SigningKeyError",
    "StateListener",
    "UnknownAdapterError",
    "VendorAnswer",
    "VendorError",
    "VendorHttpAdapter",
    "api_key_path",
    "build_acme_gateway",
    "build_gateway",
    "guarded",
    "partner_key",
    "request_signer",
    "request_verifier",
    "sign_callback",
    "signing_key_path",
    "vendor_api_key",
    "verify_callback",
    "webhook_secret",
)
