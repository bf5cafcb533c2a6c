"""The node's settings: one frozen object, read once, validated loudly.

Nothing below ``config/`` reads ``os.environ``; everything receives a ``Settings``.
Environment variables win over the TOML file given with ``--config``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MAX_ACCESS_TOKEN_TTL = 900
MAX_RETENTION_DAYS = 36500  # a hundred years: beyond it, a typo


class SettingsError(ValueError):
    """Raised when a configuration value is missing or invalid; names the variable."""


def _int(name: str, lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected an integer") from None
        if not lo <= value <= hi:
            raise SettingsError(f"{name}={raw!r}: must be between {lo} and {hi}")
        return value

    return parse


def _float(name: str, lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected a number") from None
        if not lo <= value <= hi:
            raise SettingsError(f"{name}={raw!r}: must be between {lo} and {hi}")
        return value

    return parse


def _url(name: str, schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw.startswith(tuple(f"{s}://" for s in schemes)):
            raise SettingsError(
                f"{name}={raw!r}: expected a URL starting with {' or '.join(schemes)}"
            )
        return raw.rstrip("/")

    return parse


def _networks(name: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        out = []
        for item in raw.replace(",", " ").split():
            try:
                out.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise SettingsError(f"{name}={raw!r}: {item!r} is not a CIDR") from None
        return tuple(out)

    return parse


def _name(name: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not (0 < len(raw) <= 64 and all(ch.isalnum() or ch in "-_." for ch in raw)):
            raise SettingsError(f"{name}={raw!r}: 1 to 64 letters, digits, '-', '_' or '.'")
        return raw

    return parse


def _endpoints(name: str) -> Callable[[str], tuple[tuple[str, int], ...]]:
    """``host:port`` (``[v6]:port``), comma-separated; at least one."""

    def parse(raw: str) -> tuple[tuple[str, int], ...]:
        out: list[tuple[str, int]] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            host, sep, port = item.rpartition(":")
            host = host.removeprefix("[").removesuffix("]")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise SettingsError(f"{name}={raw!r}: {item!r} is not host:port")
            if (host, int(port)) in out:
                raise SettingsError(f"{name}={raw!r}: {item!r} named twice")
            out.append((host, int(port)))
        if not out:
            raise SettingsError(f"{name}={raw!r}: expected host:port,host:port,…")
        return tuple(out)

    return parse


def _roles(name: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        roles = tuple(sorted({r.strip() for r in raw.split(",") if r.strip()}))
        unknown = [r for r in roles if r not in ROLES]
        if unknown or not roles:
            raise SettingsError(f"{name}={raw!r}: one or more of {', '.join(ROLES)}")
        return roles

    return parse


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise SettingsError(f"{name}={raw!r}: one of {', '.join(choices)}")
        return raw

    return parse


ROLES = ("devices", "gateway")
"""``PROPDEV_ROLES``: a gateway serves clients (HTTP, gRPC, WebSocket), a devices node hosts
device actors (placement gives shards only to nodes with this role)."""

ENVIRONMENTS = ("development", "production")
"""``PROPDEV_ENV``: production refuses a master key on the data volume."""

SIGNING_ALGORITHMS = ("ed25519", "ecdsa-p256-sha256")
"""RFC 9421 algorithms a partner's outgoing calls may be signed with."""


@dataclasses.dataclass(frozen=True, slots=True)
class PartnerSigning:
    """One partner whose outgoing calls are signed (RFC 9421): algorithm and key id (None: the
    key's JWK thumbprint)."""

    partner_id: str
    algorithm: str = "ed25519"
    key_id: str | None = None


def _partner_signing(name: str) -> Callable[[str], tuple[PartnerSigning, ...]]:
    """``partner[:algorithm[:key id]]``, comma-separated."""
    check = _name(name)

    def parse(raw: str) -> tuple[PartnerSigning, ...]:
        entries: dict[str, PartnerSigning] = {}
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            partner, _, rest = item.partition(":")
            algorithm, _, key_id = rest.partition(":")
            algorithm = algorithm or "ed25519"
            if algorithm not in SIGNING_ALGORITHMS:
                raise SettingsError(
                    f"{name}={raw!r}: algorithm {algorithm!r} is not one of "
                    + ", ".join(SIGNING_ALGORITHMS)
                )
            if check(partner) in entries:
                raise SettingsError(f"{name}={raw!r}: partner {partner!r} named twice")
            entries[partner] = PartnerSigning(partner, algorithm, check(key_id) if key_id else None)
        return tuple(entries.values())

    return parse


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node needs to know about its environment."""

    data_dir: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = 8443
    public_url: str = ""
    node_id: str = ""
    database_url: str = ""
    redis_url: str | None = None
    redis_prefix: str = "propdev"  # cluster name: the Redis keys of one cluster
    # Redis behind Sentinel (instead of redis_url): the sentinels and the monitored service
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_service: str = "propdev"
    roles: tuple[str, ...] = ROLES
    partner_url: str | None = None
    utilities_url: str | None = None  # unset: the utilities simulator runs in-process
    grpc_port: int | None = None  # the partners' gRPC listener (mTLS); unset: none
    callback_url: str = ""
    access_token_ttl: int = 300
    refresh_token_ttl: int = 30 * 24 * 3600
    rate_limit: float = 10.0
    partner_timeout: float = 3.0
    device_heartbeat: float = 120.0
    # keypad lockout: this many unknown guest-pass codes within the window lock a device
    keypad_attempts: int = 5
    keypad_window: float = 300.0
    keypad_cooldown: float = 300.0
    breaker_failures: int = 5
    breaker_reset: float = 30.0
    partner_cert_days: int = 365  # client certificates signed from partners' CSRs
    actor_idle_timeout: float = 300.0
    ask_timeout: float = 10.0
    log_level: str = "info"
    otlp_endpoint: str | None = None  # OTLP/HTTP traces; unset: no export
    slo_file: Path | None = None  # TOML overriding the default SLOs (observability/slo.py)
    # security (issue 3)
    master_key: str | None = dataclasses.field(default=None, repr=False)
    master_key_file: Path | None = None
    # failed sign-ins (and, apart, failed token requests) per client address per 5 minutes:
    # high, because behind a carrier-grade NAT or a load balancer many share one address
    auth_failures_per_ip: int = 200
    # account self-service: how long a password-reset code and an activation code work
    reset_code_ttl: int = 900
    activation_code_ttl: int = 7 * 24 * 3600
    trusted_proxies: tuple[str, ...] = ()  # CIDRs believed about the client's address
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # who may scrape /metrics
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_body: int = 64 * 1024
    # admission control (propdev/http/admission.py): requests handled at once, waiting, and
    # for how long; past them a request is shed with 503 (0: no admission control)
    max_inflight: int = 128
    inflight_queue: int | None = None  # None: as many as max_inflight
    inflight_wait: float = 1.0
    ws_per_user: int = 5
    connections_per_ip: int = 256  # open connections per client address on the API listener
    connections_exempt: tuple[str, ...] = ()  # CIDRs without that cap (a load balancer)
    external_oidc_issuer: str | None = None
    external_oidc_audience: str | None = None
    external_oidc_ca_file: Path | None = None
    external_oidc_roles_claim: str | None = None  # dotted path, e.g. realm_access.roles
    partner_signing: tuple[PartnerSigning, ...] = ()  # partners whose calls we sign (RFC 9421)
    # personal data (docs/personal-data.md): residents' events and open commands are kept this
    # many days; audit entries keep their personal fields this many days (then blanked)
    retention_events_days: int = 365
    retention_audit_days: int = 1095
    # production: the master key must come from outside the data dir (propdev.security.custody)
    environment: str = "development"
    # push to phones (propdev.push): each provider is on when its credentials are given
    fcm_credentials: Path | None = None  # a Google service-account JSON key file
    fcm_url: str = "https://fcm.googleapis.com"
    apns_key_file: Path | None = None  # the .p8 (PEM, P-256) token-signing key
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_topic: str | None = None  # the app's bundle id
    apns_url: str = "https://api.push.apple.com"
    vapid_private_key_file: Path | None = None  # PEM, P-256
    # outbound TLS (push providers): the system store plus this PEM bundle
    extra_ca_file: Path | None = None
    audit_checkpoint_seconds: int = 60  # a signed checkpoint over the audit chains this often

    @property
    def clustered(self) -> bool:
        """True when the node is one of a cluster linked by Redis (a URL or sentinels)."""
        return self.redis_url is not None or bool(self.redis_sentinels)

    @property
    def gateway(self) -> bool:
        """True when this node serves clients (the public HTTP API, gRPC, WebSockets)."""
        return "gateway" in self.roles

    @property
    def devices(self) -> bool:
        """True when this node hosts device actors (placement may give it shards)."""
        return "devices" in self.roles

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "demo-credentials.json"

    def signing_for(self, partner_id: str) -> PartnerSigning | None:
        """How ``partner_id``'s outgoing calls are signed; None when they are not."""
        return next((p for p in self.partner_signing if p.partner_id == partner_id), None)

    @property
    def embedded_partner(self) -> bool:
        """True when the vendor simulator runs inside this node."""
        return self.partner_url is None

    @property
    def audience(self) -> str:
        """The ``aud`` of access tokens for this API."""
        return self.public_url

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, toml_path: str | Path | None = None
    ) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) over an optional TOML file.

        TOML keys are the variable names without the ``PROPDEV_`` prefix, in lower case.
        """
        env = dict(os.environ if environ is None else environ)
        values: dict[str, str] = {}
        if toml_path is not None:
            try:
                with open(toml_path, "rb") as fh:
                    table: dict[str, Any] = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"--config {toml_path}: {exc}") from None
            for key, value in table.items():
                values[f"PROPDEV_{key.upper()}"] = str(value)
        values.update({k: v for k, v in env.items() if k.startswith("PROPDEV_")})
        if "PROPDEV_OTLP_ENDPOINT" not in values and env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            values["PROPDEV_OTLP_ENDPOINT"] = env["OTEL_EXPORTER_OTLP_ENDPOINT"]  # the OTel name

        parsers: dict[str, tuple[str, Callable[[str], Any]]] = {
            "PROPDEV_DATA_DIR": ("data_dir", Path),
            "PROPDEV_HOST": ("host", str),
            "PROPDEV_PORT": ("port", _int("PROPDEV_PORT", 0, 65535)),
            "PROPDEV_PUBLIC_URL": ("public_url", _url("PROPDEV_PUBLIC_URL", ("https",))),
            "PROPDEV_NODE_ID": ("node_id", str),
            "PROPDEV_DATABASE_URL": (
                "database_url",
                _url("PROPDEV_DATABASE_URL", ("sqlite", "postgresql", "postgres")),
            ),
            "PROPDEV_REDIS_URL": ("redis_url", _url("PROPDEV_REDIS_URL", ("redis", "rediss"))),
            "PROPDEV_REDIS_PREFIX": ("redis_prefix", _name("PROPDEV_REDIS_PREFIX")),
            "PROPDEV_REDIS_SENTINELS": (
                "redis_sentinels",
                _endpoints("PROPDEV_REDIS_SENTINELS"),
            ),
            "PROPDEV_REDIS_SERVICE": ("redis_service", _name("PROPDEV_REDIS_SERVICE")),
            "PROPDEV_ROLES": ("roles", _roles("PROPDEV_ROLES")),
            "PROPDEV_PARTNER_URL": ("partner_url", _url("PROPDEV_PARTNER_URL", ("https",))),
            "PROPDEV_UTILITIES_URL": (
                "utilities_url",
                _url("PROPDEV_UTILITIES_URL", ("https",)),
            ),
            "PROPDEV_GRPC_PORT": ("grpc_port", _int("PROPDEV_GRPC_PORT", 0, 65535)),
            "PROPDEV_CALLBACK_URL": ("callback_url", _url("PROPDEV_CALLBACK_URL", ("https",))),
            "PROPDEV_ACCESS_TOKEN_TTL": (
                "access_token_ttl",
                _int("PROPDEV_ACCESS_TOKEN_TTL", 10, MAX_ACCESS_TOKEN_TTL),
            ),
            "PROPDEV_REFRESH_TOKEN_TTL": (
                "refresh_token_ttl",
                _int("PROPDEV_REFRESH_TOKEN_TTL", 60, 90 * 24 * 3600),
            ),
            "PROPDEV_RATE_LIMIT": ("rate_limit", _float("PROPDEV_RATE_LIMIT", 0, 1e6)),
            "PROPDEV_PARTNER_TIMEOUT": (
                "partner_timeout",
                _float("PROPDEV_PARTNER_TIMEOUT", 0.05, 120),
            ),
            "PROPDEV_DEVICE_HEARTBEAT": (
                "device_heartbeat",
                _float("PROPDEV_DEVICE_HEARTBEAT", 0.01, 86400),
            ),
            "PROPDEV_KEYPAD_ATTEMPTS": (
                "keypad_attempts",
                _int("PROPDEV_KEYPAD_ATTEMPTS", 1, 1000),
            ),
            "PROPDEV_KEYPAD_WINDOW": ("keypad_window", _float("PROPDEV_KEYPAD_WINDOW", 1, 86400)),
            "PROPDEV_KEYPAD_COOLDOWN": (
                "keypad_cooldown",
                _float("PROPDEV_KEYPAD_COOLDOWN", 1, 86400),
            ),
            "PROPDEV_BREAKER_FAILURES": (
                "breaker_failures",
                _int("PROPDEV_BREAKER_FAILURES", 1, 10_000),
            ),
            "PROPDEV_BREAKER_RESET": ("breaker_reset", _float("PROPDEV_BREAKER_RESET", 0.1, 3600)),
            "PROPDEV_PARTNER_CERT_DAYS": (
                "partner_cert_days",
                _int("PROPDEV_PARTNER_CERT_DAYS", 1, 365),
            ),
            "PROPDEV_ACTOR_IDLE_TIMEOUT": (
                "actor_idle_timeout",
                _float("PROPDEV_ACTOR_IDLE_TIMEOUT", 0.01, 86400),
            ),
            "PROPDEV_ASK_TIMEOUT": ("ask_timeout", _float("PROPDEV_ASK_TIMEOUT", 0.01, 600)),
            "PROPDEV_LOG_LEVEL": ("log_level", str),
            "PROPDEV_OTLP_ENDPOINT": (
                "otlp_endpoint",
                _url("PROPDEV_OTLP_ENDPOINT", ("http", "https")),
            ),
            "PROPDEV_SLO_FILE": ("slo_file", Path),
            "PROPDEV_MASTER_KEY": ("master_key", str),
            "PROPDEV_MASTER_KEY_FILE": ("master_key_file", Path),
            "PROPDEV_AUTH_FAILURES_PER_IP": (
                "auth_failures_per_ip",
                _int("PROPDEV_AUTH_FAILURES_PER_IP", 0, 1_000_000),
            ),
            "PROPDEV_RESET_CODE_TTL": (
                "reset_code_ttl",
                _int("PROPDEV_RESET_CODE_TTL", 60, 24 * 3600),
            ),
            "PROPDEV_ACTIVATION_CODE_TTL": (
                "activation_code_ttl",
                _int("PROPDEV_ACTIVATION_CODE_TTL", 3600, 90 * 24 * 3600),
            ),
            "PROPDEV_TRUSTED_PROXIES": ("trusted_proxies", _networks("PROPDEV_TRUSTED_PROXIES")),
            "PROPDEV_METRICS_ALLOW": ("metrics_allow", _networks("PROPDEV_METRICS_ALLOW")),
            "PROPDEV_HEADER_TIMEOUT": (
                "header_timeout",
                _float("PROPDEV_HEADER_TIMEOUT", 0.1, 600),
            ),
            "PROPDEV_BODY_TIMEOUT": ("body_timeout", _float("PROPDEV_BODY_TIMEOUT", 0.1, 600)),
            "PROPDEV_MAX_BODY": ("max_body", _int("PROPDEV_MAX_BODY", 1024, 64 * 1024 * 1024)),
            "PROPDEV_MAX_INFLIGHT": (
                "max_inflight",
                _int("PROPDEV_MAX_INFLIGHT", 0, 1_000_000),
            ),
            "PROPDEV_INFLIGHT_QUEUE": (
                "inflight_queue",
                _int("PROPDEV_INFLIGHT_QUEUE", 0, 1_000_000),
            ),
            "PROPDEV_INFLIGHT_WAIT": (
                "inflight_wait",
                _float("PROPDEV_INFLIGHT_WAIT", 0, 60),
            ),
            "PROPDEV_WS_PER_USER": ("ws_per_user", _int("PROPDEV_WS_PER_USER", 1, 1000)),
            "PROPDEV_CONNECTIONS_PER_IP": (
                "connections_per_ip",
                _int("PROPDEV_CONNECTIONS_PER_IP", 0, 1_000_000),
            ),
            "PROPDEV_CONNECTIONS_EXEMPT": (
                "connections_exempt",
                _networks("PROPDEV_CONNECTIONS_EXEMPT"),
            ),
            "PROPDEV_EXTERNAL_OIDC_ISSUER": (
                "external_oidc_issuer",
                _url("PROPDEV_EXTERNAL_OIDC_ISSUER", ("https",)),
            ),
            "PROPDEV_EXTERNAL_OIDC_AUDIENCE": ("external_oidc_audience", str),
            "PROPDEV_EXTERNAL_OIDC_CA_FILE": ("external_oidc_ca_file", Path),
            "PROPDEV_EXTERNAL_OIDC_ROLES_CLAIM": ("external_oidc_roles_claim", str),
            "PROPDEV_PARTNER_SIGNING": (
                "partner_signing",
                _partner_signing("PROPDEV_PARTNER_SIGNING"),
            ),
            "PROPDEV_RETENTION_EVENTS_DAYS": (
                "retention_events_days",
                _int("PROPDEV_RETENTION_EVENTS_DAYS", 1, MAX_RETENTION_DAYS),
            ),
            "PROPDEV_RETENTION_AUDIT_DAYS": (
                "retention_audit_days",
                _int("PROPDEV_RETENTION_AUDIT_DAYS", 1, MAX_RETENTION_DAYS),
            ),
            "PROPDEV_ENV": ("environment", _choice("PROPDEV_ENV", ENVIRONMENTS)),
            "PROPDEV_FCM_CREDENTIALS": ("fcm_credentials", Path),
            "PROPDEV_FCM_URL": ("fcm_url", _url("PROPDEV_FCM_URL", ("https",))),
            "PROPDEV_APNS_KEY_FILE": ("apns_key_file", Path),
            "PROPDEV_APNS_KEY_ID": ("apns_key_id", str),
            "PROPDEV_APNS_TEAM_ID": ("apns_team_id", str),
            "PROPDEV_APNS_TOPIC": ("apns_topic", str),
            "PROPDEV_APNS_URL": ("apns_url", _url("PROPDEV_APNS_URL", ("https",))),
            "PROPDEV_VAPID_PRIVATE_KEY_FILE": ("vapid_private_key_file", Path),
            "PROPDEV_EXTRA_CA_FILE": ("extra_ca_file", Path),
            "PROPDEV_AUDIT_CHECKPOINT_SECONDS": (
                "audit_checkpoint_seconds",
                _int("PROPDEV_AUDIT_CHECKPOINT_SECONDS", 1, 24 * 3600),
            ),
        }
        kwargs: dict[str, Any] = {}
        for var, raw in values.items():
            if var not in parsers:
                continue
            field, parse = parsers[var]
            if raw == "":
                continue
            kwargs[field] = parse(raw)
        settings = cls(**kwargs)
        return settings.resolved()

    def resolved(self) -> Settings:
        """Fill the defaults that depend on other values (public URL, node id, database)."""
        public_url = self.public_url or f"https://{self.host}:{self.port}"
        node_id = self.node_id or f"{socket.gethostname()}-{os.getpid()}"
        database_url = self.database_url or f"sqlite:///{(self.data_dir / 'propdev.db').resolve()}"
        callback_url = self.callback_url or public_url
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingsError(
                f"PROPDEV_LOG_LEVEL={self.log_level!r}: debug, info, warning or error"
            )
        if self.redis_url is not None and self.redis_sentinels:
            raise SettingsError(
                "PROPDEV_REDIS_URL and PROPDEV_REDIS_SENTINELS are both set: one or the other "
                "(with Sentinel, the master's address comes from the sentinels)"
            )
        if self.roles != ROLES and not self.clustered:
            raise SettingsError(
                f"PROPDEV_ROLES={','.join(self.roles)}: a node with one role is one of a cluster; "
                "set PROPDEV_REDIS_URL or PROPDEV_REDIS_SENTINELS"
            )
        if self.environment == "production":
            self._check_master_key_custody()
        return dataclasses.replace(
            self,
            public_url=public_url,
            node_id=node_id,
            database_url=database_url,
            callback_url=callback_url,
            log_level=self.log_level.lower(),
        )

    def _check_master_key_custody(self) -> None:
        """Production: the master key comes from the environment or a file outside the data dir."""
        if self.master_key:
            return
        if self.master_key_file is None:
            raise SettingsError(
                "PROPDEV_ENV=production: set PROPDEV_MASTER_KEY or PROPDEV_MASTER_KEY_FILE "
                "(outside the data dir); the master key is not kept on the data volume"
            )
        if self.master_key_file.resolve().is_relative_to(self.data_dir.resolve()):
            raise SettingsError(
                f"PROPDEV_MASTER_KEY_FILE={self.master_key_file}: inside PROPDEV_DATA_DIR="
                f"{self.data_dir}; with PROPDEV_ENV=production the master key must not be on "
                "the data volume"
            )
