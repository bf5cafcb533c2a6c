"""Local stand-ins for FCM, APNs and a Web Push service that check the protocol as the real
services do, each over TLS on 127.0.0.1 with a test CA (``PROPDEV_EXTRA_CA_FILE``).

- ``FcmStandIn``: the service account's ``token_uri`` (an RFC 7523 JWT-bearer grant whose
  assertion is verified with the account's public key: ``kid``, ``iss``, ``aud`` = this
  ``token_uri``, ``iat``/``exp``) and ``/v1/projects/{id}/messages:send``, which wants
  ``Authorization: Bearer <a token it issued>`` (401 ``UNAUTHENTICATED`` otherwise) and answers
  404 ``UNREGISTERED`` for a token marked gone.
- ``ApnsStandIn``: HTTP/2 only (h2, ALPN ``h2``); the provider JWT (ES256, ``kid``,
  ``iss`` = team, ``iat`` within the hour) and ``apns-topic`` are checked (403 with Apple's
  reasons), 410 ``Unregistered`` for a gone token.
- ``WebPushStandIn``: a push service's endpoint: VAPID (``vapid t=…, k=…``: the signature, ``aud``
  = the endpoint's origin, ``exp``, ``k`` = the subscribed ``applicationServerKey``), then the
  RFC 8291 body is decrypted with the subscription's private key (written here from the RFC,
  not with the library the node uses); 410 for a gone subscription.

Each records what it accepted (``received``, with ``time.perf_counter()`` at receipt) and can
be told to fail the next requests (``fail_next``) with a status.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

# -- TLS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandInCA:
    """A CA and a server certificate for 127.0.0.1, as files."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self, *, alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


def make_ca(directory: Path) -> StandInCA:
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "push stand-ins test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    found = StandInCA(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    found.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    found.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return found


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- common -----------------------------------------------------------------------------------


@dataclass
class Received:
    token: str
    at: float  # time.perf_counter() at receipt
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Recorder:
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (status, reason)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer next, in order
    gone: set[str] = field(default_factory=set)  # tokens answered as gone
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def note(self, item: Received | tuple[int, str]) -> None:
        async with self._changed:
            if isinstance(item, Received):
                self.received.append(item)
            else:
                self.refused.append(item)
            self._changed.notify_all()

    async def wait_until(self, check: Callable[[Recorder], bool], *, within: float) -> None:
        """Wait (woken by each request, bounded by ``within`` against hangs) until ``check``."""

        async def waiting() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: check(self))

        await asyncio.wait_for(waiting(), within)


# -- FCM --------------------------------------------------------------------------------------


class FcmStandIn(Recorder):
    """Google's OAuth token endpoint and FCM's send endpoint for one service account."""

    def __init__(self, ca: StandInCA, project_id: str = "propdev-test") -> None:
        super().__init__()
        self.ca = ca
        self.project_id = project_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(20)
        self.client_email = f"push@{project_id}.iam.gserviceaccount.com"
        self.issued: dict[str, float] = {}  # access token → expires (time.time())
        self.grants = 0
        self.expires_in = 3600
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def service_account(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project_id,
                    "private_key_id": self.key_id,
                    "private_key": pem(self.key).decode(),
                    "client_email": self.client_email,
                    "client_id": "1234567890",
                    "token_uri": self.token_uri,
                }
            )
        )
        return path

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ca.server_context())
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return await self._grant_refused("unsupported_grant_type")
        assertion = str(form.get("assertion", ""))
        try:
            header = jwt.get_unverified_header(assertion)
            if header.get("kid") != self.key_id or header.get("alg") != "RS256":
                return await self._grant_refused("invalid_grant: kid")
            claims = jwt.decode(
                assertion,
                self.key.public_key(),
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=self.client_email,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            return await self._grant_refused(f"invalid_grant: {exc}")
        if claims["exp"] - claims["iat"] > 3600:
            return await self._grant_refused("invalid_grant: exp more than 1 h after iat")
        if "https://www.googleapis.com/auth/firebase.messaging" not in str(
            claims.get("scope", "")
        ).split(" "):
            return await self._grant_refused("invalid_scope")
        token = "ya29." + secrets.token_urlsafe(32)
        self.issued[token] = time.time() + self.expires_in
        self.grants += 1
        return web.json_response(
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        )

    async def _grant_refused(self, reason: str) -> web.Response:
        await self.note((400, reason))
        return web.json_response({"error": reason}, status=400)

    async def _send(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self.issued.get(token, 0) < time.time():
            await self.note((401, "UNAUTHENTICATED"))
            return _fcm_error(401, "UNAUTHENTICATED", None)
        if request.match_info["project"] != self.project_id:
            await self.note((403, "PERMISSION_DENIED"))
            return _fcm_error(403, "PERMISSION_DENIED", None)
        body = await request.json()
        message = body.get("message", {})
        device = message.get("token")
        data = message.get("data", {})
        if not isinstance(device, str) or not all(isinstance(v, str) for v in data.values()):
            await self.note((400, "INVALID_ARGUMENT"))
            return _fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
        if self.fail_next:
            status = self.fail_next.pop(0)
            await self.note((status, "injected"))
            return _fcm_error(status, "UNAVAILABLE", "UNAVAILABLE")
        if device in self.gone:
            await self.note((404, "UNREGISTERED"))
            return _fcm_error(404, "NOT_FOUND", "UNREGISTERED")
        await self.note(Received(device, at, dict(request.headers), message))
        name = f"projects/{self.project_id}/messages/{secrets.token_hex(8)}"
        return web.json_response({"name": name})


def _fcm_error(status: int, top: str, code: str | None) -> web.Response:
    details = []
    if code is not None:
        details.append(
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        )
    body = {"error": {"code": status, "message": top, "status": top, "details": details}}
    return web.json_response(body, status=status)


# -- APNs -------------------------------------------------------------------------------------


class ApnsStandIn(Recorder):
    """APNs' provider API over HTTP/2 (h2) and TLS; token-based authentication."""

    def __init__(self, ca: StandInCA, *, topic: str = "ru.propdev.app") -> None:
        super().__init__()
        self.ca = ca
        self.topic = topic
        self.team_id = "TEAM123456"
        self.key_id = "KEY1234567"
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.port = 0
        self.protocols: list[str | None] = []  # the ALPN protocol of each connection
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def key_file(self, path: Path) -> Path:
        path.write_bytes(pem(self.key))
        return path

    async def start(self) -> None:
        ctx = self.ca.server_context(alpn=["h2"])
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        ssl_object = writer.get_extra_info("ssl_object")
        self.protocols.append(ssl_object.selected_alpn_protocol() if ssl_object else None)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {
                            (k.decode() if isinstance(k, bytes) else k): (
                                v.decode() if isinstance(v, bytes) else v
                            )
                            for k, v in event.headers or []
                        }
                        streams[event.stream_id] = (headers, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data or b"")
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        status, reply = await self._request(headers, bytes(body))
                        out = [(":status", str(status)), ("apns-id", secrets.token_hex(16))]
                        if reply:
                            out.append(("content-type", "application/json"))
                        conn.send_headers(event.stream_id, out, end_stream=not reply)
                        if reply:
                            conn.send_data(event.stream_id, reply, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _refuse(self, status: int, reason: str) -> tuple[int, bytes]:
        await self.note((status, reason))
        body: dict[str, Any] = {"reason": reason}
        if status == 410:
            body["timestamp"] = int(time.time() * 1000)
        return status, json.dumps(body).encode()

    async def _request(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        at = time.perf_counter()
        if headers.get(":method") != "POST":
            return await self._refuse(405, "MethodNotAllowed")
        match = re.fullmatch(r"/3/device/([0-9a-f]{64})", headers.get(":path", ""))
        if match is None:
            return await self._refuse(400, "BadDeviceToken")
        auth = headers.get("authorization", "")
        if not auth.startswith("bearer "):
            return await self._refuse(403, "MissingProviderToken")
        token = auth.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["ES256"],
                options={"require": ["iss", "iat"], "verify_iat": True},
            )
        except jwt.PyJWTError:
            return await self._refuse(403, "InvalidProviderToken")
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return await self._refuse(403, "InvalidProviderToken")
        if time.time() - int(claims["iat"]) > 3600:
            return await self._refuse(403, "ExpiredProviderToken")
        if headers.get("apns-topic") != self.topic:
            return await self._refuse(
                400, "BadTopic" if "apns-topic" in headers else "MissingTopic"
            )
        if headers.get("apns-push-type") not in ("alert", "background"):
            return await self._refuse(400, "InvalidPushType")
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return await self._refuse(400, "BadCollapseId")
        try:
            payload = json.loads(body)
        except ValueError:
            return await self._refuse(400, "PayloadEmpty")
        if "aps" not in payload or len(body) > 4096:
            return await self._refuse(400, "PayloadEmpty")
        if self.fail_next:
            status = self.fail_next.pop(0)
            return await self._refuse(status, "ServiceUnavailable")
        device = match.group(1)
        if device in self.gone:
            return await self._refuse(410, "Unregistered")
        await self.note(Received(device, at, headers, payload))
        return 200, b""


# -- Web Push ---------------------------------------------------------------------------------


@dataclass
class Subscription:
    """A browser's side of a push subscription: its key pair and auth secret."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64u(self.public_bytes), "auth": b64u(self.auth)},
        }


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def decrypt_aes128gcm(body: bytes, sub: Subscription) -> bytes:
    """RFC 8291 §3.4 + RFC 8188, one record: the user agent's side."""
    salt, rs, idlen = body[:16], struct.unpack(">I", body[16:20])[0], body[20]
    if idlen != 65 or rs < 18:
        raise ValueError("bad aes128gcm header")
    as_public = body[21 : 21 + idlen]
    ciphertext = body[21 + idlen :]
    if len(ciphertext) > rs:
        raise ValueError("more than one record")
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    shared = sub.private_key.exchange(ec.ECDH(), sender)
    prk_key = _hmac(sub.auth, shared)
    ikm = _hmac(prk_key, b"WebPush: info\x00" + sub.public_bytes + as_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    plain = padded.rstrip(b"\x00")
    if not plain.endswith(b"\x02"):
        raise ValueError("not the last record's delimiter")
    return plain[:-1]


class WebPushStandIn(Recorder):
    """A push service's endpoints (``/push/<id>``) for subscriptions it made."""

    def __init__(self, ca: StandInCA, application_server_key: bytes) -> None:
        super().__init__()
        self.ca = ca
        self.application_server_key = application_server_key  # what browsers subscribed with
        self.subscriptions: dict[str, Subscription] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def subscribe(self) -> Subscription:
        sub_id = secrets.token_urlsafe(12)
        sub = Subscription(
            f"{self.origin}/push/{sub_id}", ec.generate_private_key(ec.SECP256R1()), os.urandom(16)
        )
        self.subscriptions[sub_id] = sub
        return sub

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push/{id}", self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ca.server_context())
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _refuse(self, status: int, reason: str) -> web.Response:
        await self.note((status, reason))
        return web.Response(status=status, text=reason)

    async def _push(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return await self._refuse(404, "no such subscription")
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("vapid "):
            return await self._refuse(401, "no vapid authorization")
        params = dict(
            part.strip().split("=", 1) for part in auth[6:].split(",") if "=" in part.strip()
        )
        if "t" not in params or "k" not in params:
            return await self._refuse(401, "vapid t and k required")
        if unb64u(params["k"]) != self.application_server_key:
            return await self._refuse(403, "k is not the subscription's applicationServerKey")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(params["k"]))
        try:
            claims = jwt.decode(
                params["t"],
                public,
                algorithms=["ES256"],
                audience=self.origin,
                options={"require": ["aud", "exp"]},
            )
        except jwt.PyJWTError as exc:
            return await self._refuse(403, f"vapid: {exc}")
        if claims["exp"] > time.time() + 24 * 3600:
            return await self._refuse(403, "vapid: exp more than 24 h ahead")
        if request.headers.get("TTL") is None:
            return await self._refuse(400, "TTL required")
        topic = request.headers.get("Topic")
        if topic is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", topic):
            return await self._refuse(400, "bad Topic")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return await self._refuse(415, "aes128gcm only")
        body = await request.read()
        if len(body) > 4096:
            return await self._refuse(413, "payload too large")
        try:
            plain = decrypt_aes128gcm(body, sub)
        except Exception as exc:
            return await self._refuse(400, f"cannot decrypt: {exc!r}")
        if self.fail_next:
            return await self._refuse(self.fail_next.pop(0), "injected")
        if sub.endpoint in self.gone:
            return await self._refuse(410, "subscription expired")
        await self.note(Received(sub.endpoint, at, dict(request.headers), json.loads(plain)))
        return web.Response(
            status=201, headers={"Location": f"{self.origin}/m/{secrets.token_hex(8)}"}
        )
