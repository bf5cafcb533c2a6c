from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from propdev.config.settings import Settings
from propdev.http.middlewares import request_context_middleware
from propdev.http.routes.oauth import oauth_routes
from propdev.security import (
    OAuthServer,
    SigningKeys,
    TokenIssuer,
    TokenVerifier,
    Vault,
    attach_vault,
    create_user,
    register_partner_client,
    register_public_client,
)
from propdev.storage import Database, migrate

ISSUER = "https://propdev.test"
CLIENT_ID = "mobile-app"
REDIRECT_URI = "com.propdev.app:/oauth/callback"
PASSWORD = "correct horse battery staple"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PARTNER_DN = "CN=simulator,O=propdev partners"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, public_url=ISSUER).resolved()


@pytest.fixture(scope="session")
def _key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # RSA generation is slow-ish: one key for the session, copied into each test's dir.
    directory = tmp_path_factory.mktemp("jwt")
    SigningKeys.load_or_create(directory)
    return directory


@pytest.fixture
def keys(settings: Settings, _key_dir: Path) -> SigningKeys:
    target = settings.pki_dir / "jwt"
    target.mkdir(parents=True)
    for pem in _key_dir.glob("key-*.pem"):
        (target / pem.name).write_bytes(pem.read_bytes())
        (target / pem.name).chmod(0o600)
    return SigningKeys.load_or_create(target)


@pytest.fixture
def issuer(settings: Settings, keys: SigningKeys, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(settings, keys, clock=clock)


@pytest.fixture
def verifier(settings: Settings, keys: SigningKeys, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(settings, keys, clock=clock)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/t.db")
    await migrate(database)
    attach_vault(database, Vault.for_tests())  # explicit: personal data needs a key store
    yield database
    await database.close()


@pytest.fixture
async def users(db: Database) -> dict[str, str]:
    resident = await create_user(
        db, username="alice", password=PASSWORD, roles=["resident"], full_name="Alice A."
    )
    operator = await create_user(
        db, username="oscar", password=PASSWORD, roles=["operator"], totp_secret=TOTP_SECRET
    )
    await register_public_client(
        db,
        CLIENT_ID,
        client_name="Propdev app",
        redirect_uris=[REDIRECT_URI],
        scope="openid profile phone api",
    )
    await register_partner_client(
        db, "simulator", subject_dn=PARTNER_DN, allowed_cidrs=["127.0.0.0/8"]
    )
    return {"alice": resident, "oscar": operator}


@pytest.fixture
def oauth(
    settings: Settings,
    db: Database,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    clock: FakeClock,
) -> OAuthServer:
    """The server, sharing ``verifier`` (the node's one verifier) as a node wires it."""
    return OAuthServer(settings, db, issuer, verifier, clock=clock)


@pytest.fixture
async def client(aiohttp_client, oauth: OAuthServer, users: dict[str, str]):  # type: ignore[no-untyped-def]
    app = web.Application(middlewares=[request_context_middleware(node_id="test")])
    app.add_routes(oauth_routes(oauth))
    return await aiohttp_client(app)
