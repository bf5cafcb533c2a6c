"""Security: passwords, TOTP, signing keys, JWTs, and the OAuth 2.0 / OIDC server.

Wiring, once per node::

    keys = SigningKeys.load_or_create(settings.pki_dir / "jwt")
    issuer = TokenIssuer(settings, keys)
    verifier = TokenVerifier(settings, keys)        # every token check: API and OAuth server
    oauth = OAuthServer(settings, db, issuer, verifier)

Its HTTP routes are ``propdev.http.routes.oauth``; nothing here imports aiohttp.web.
"""

from __future__ import annotations

from propdev.security.audit_personal import (
    audit_opener,
    open_audit_personal,
    seal_record_in,
    sealed_record,
)
from propdev.security.clients import (
    PARTNER_CLIENT_UPSERT,
    WEB_APP_CLIENT_ID,
    Client,
    address_in,
    partner_client_params,
    register_partner_client,
    register_public_client,
    register_web_app_client,
    web_app_redirect_uri,
)
from propdev.security.crypto import (
    CryptoError,
    MasterKeyError,
    NoKeyStoreError,
    PersonKeyDestroyedError,
    Vault,
    attach_vault,
    open_vault,
    vault_of,
)
from propdev.security.errors import (
    AuthorizationRequestError,
    InvalidTokenError,
    KeyStoreError,
    LoginFailedError,
    LoginThrottledError,
    SecurityError,
)
from propdev.security.external import ExternalVerifier
from propdev.security.keys import ALGORITHM, SigningKey, SigningKeys, jwk_thumbprint
from propdev.security.login_page import PAGE_HEADERS as LOGIN_PAGE_HEADERS
from propdev.security.login_page import render_error as render_login_error
from propdev.security.login_page import render_login as render_login_page
from propdev.security.passwords import hash_password, needs_rehash, verify_password
from propdev.security.person_keys import person_key, person_key_in, wrapped_key_of
from propdev.security.personal import (
    USER_KEY,
    VEHICLE_KEY,
    open_plate_value,
    open_user_field,
    seal_plate_value,
    seal_user_fields,
)
from propdev.security.recovery import LOW as RECOVERY_CODES_LOW
from propdev.security.recovery import (
    RecoveryCodes,
    new_recovery_codes,
    recovery_codes_status,
    remaining_recovery_codes,
    store_recovery_codes,
)
from propdev.security.server import (
    AUTHORIZE_PARAMS,
    SCOPES_SUPPORTED,
    AuthorizationRequest,
    OAuthResponse,
    OAuthServer,
)
from propdev.security.signin import SignInThrottle, Wait
from propdev.security.throttle import (
    Backoff,
    Ceiling,
    FailureThrottle,
    LocalThrottle,
    RedisThrottle,
)
from propdev.security.tokens import (
    Claims,
    TokenIssuer,
    TokenVerifier,
    certificate_thumbprint,
    check_certificate_binding,
)
from propdev.security.totp import current_code, new_totp_secret, provisioning_uri
from propdev.security.users import (
    Login,
    User,
    create_user,
    find_user_by_phone,
    get_user,
    normalize_username,
    set_password,
    set_totp_secret,
)

__all__ = (
    "ALGORITHM",
    "AUTHORIZE_PARAMS",
    "LOGIN_PAGE_HEADERS",
    "PARTNER_CLIENT_UPSERT",
    "RECOVERY_CODES_LOW",
    "SCOPES_SUPPORTED",
    "USER_KEY",
    "VEHICLE_KEY",
    "WEB_APP_CLIENT_ID",
    "AuthorizationRequest",
    "AuthorizationRequestError",
    "Backoff",
    "Ceiling",
    "Claims",
    "Client",
    "CryptoError",
    "ExternalVerifier",
    "FailureThrottle",
    "InvalidTokenError",
    "KeyStoreError",
    "LocalThrottle",
    "Login",
    "LoginFailedError",
    "LoginThrottledError",
    "MasterKeyError",
    "NoKeyStoreError",
    "OAuthResponse",
    "OAuthServer",
    "PersonKeyDestroyedError",
    "RecoveryCodes",
    "RedisThrottle",
    "SecurityError",
    "SignInThrottle",
    "SigningKey",
    "SigningKeys",
    "TokenIssuer",
    "TokenVerifier",
    "User",
    "Vault",
    "Wait",
    "address_in",
    "attach_vault",
    "audit_opener",
    "certificate_thumbprint",
    "check_certificate_binding",
    "create_user",
    "current_code",
    "find_user_by_phone",
    "get_user",
    "hash_password",
    "jwk_thumbprint",
    "needs_rehash",
    "new_recovery_codes",
    "new_totp_secret",
    "normalize_username",
    "open_audit_personal",
    "open_plate_value",
    "open_user_field",
    "open_vault",
    "partner_client_params",
    "person_key",
    "person_key_in",
    "provisioning_uri",
    "recovery_codes_status",
    "register_partner_client",
    "register_public_client",
    "register_web_app_client",
    "remaining_recovery_codes",
    "render_login_error",
    "render_login_page",
    "seal_plate_value",
    "seal_record_in",
    "seal_user_fields",
    "sealed_record",
    "set_password",
    "set_totp_secret",
    "store_recovery_codes",
    "vault_of",
    "verify_password",
    "web_app_redirect_uri",
    "wrapped_key_of",
)
