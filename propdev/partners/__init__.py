"""Partners: the vendor interface, its adapters, the resilience gateway and the simulator."""

from __future__ import annotations

from propdev.partners.acme import AcmeAdapter, AcmeHttpClient, AcmeInProcessClient
from propdev.partners.apikey import api_key_path, vendor_api_key
from propdev.partners.base import DeviceInfo, DeviceKind, DeviceStatus, OpenResult, PartnerAdapter
from propdev.partners.breaker import Breaker
from propdev.partners.callbacks import CallbackSender
from propdev.partners.confirmations import Confirmation, Confirmations, ConfirmsByCallback
from propdev.partners.errors import (
    BulkheadFullError,
    CircuitOpenError,
    PartnerError,
    PartnerRefusedError,
    PartnerTimeoutError,
    PartnerUnavailableError,
    SigningKeyError,
)
from propdev.partners.gateway import (
    SIMULATOR_PARTNER_ID,
    PartnerGateway,
    build_acme_gateway,
    build_gateway,
)
from propdev.partners.httpsig import (
    PartnerKey,
    RequestSigner,
    RequestVerifier,
    partner_key,
    request_signer,
    request_verifier,
    signing_key_path,
)
from propdev.partners.inprocess import InProcessAdapter
from propdev.partners.signing import sign_callback, verify_callback, webhook_secret
from propdev.partners.simulator import (
    DEFAULT_DEVICES,
    FaultMode,
    PartnerSimServer,
    VendorSimulator,
    control_routes,
    make_vendor_app,
    run_partner_sim,
    serve_forever,
)
from propdev.partners.vendor import VendorHttpAdapter

__all__ = (
    "DEFAULT_DEVICES",
    "SIMULATOR_PARTNER_ID",
    "AcmeAdapter",
    "AcmeHttpClient",
    "AcmeInProcessClient",
    "Breaker",
    "BulkheadFullError",
    "CallbackSender",
    "CircuitOpenError",
    "Confirmation",
    "Confirmations",
    "ConfirmsByCallback",
    "DeviceInfo",
    "DeviceKind",
    "DeviceStatus",
    "FaultMode",
    "InProcessAdapter",
    "OpenResult",
    "PartnerAdapter",
    "PartnerError",
    "PartnerGateway",
    "PartnerKey",
    "PartnerRefusedError",
    "PartnerSimServer",
    "PartnerTimeoutError",
    "PartnerUnavailableError",
    "RequestSigner",
    "RequestVerifier",
    "SigningKeyError",
    "VendorHttpAdapter",
    "VendorSimulator",
    "api_key_path",
    "build_acme_gateway",
    "build_gateway",
    "control_routes",
    "make_vendor_app",
    "partner_key",
    "request_signer",
    "request_verifier",
    "run_partner_sim",
    "serve_forever",
    "sign_callback",
    "signing_key_path",
    "vendor_api_key",
    "verify_callback",
    "webhook_secret",
)
