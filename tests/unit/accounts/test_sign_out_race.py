"""A refresh that rotates a token while its session is being signed out must not leave a live
token behind: the new token is not stored into a revoked family."""

from __future__ import annotations

from propdev.security.store import OAuthStore
from tests.unit.accounts.conftest import PASSWORD, World


def save(store: OAuthStore, token: str, family: str, user_id: str) -> None:
    store.save_refresh_token(
        token,
        family_id=family,
        client_id="mobile-app",
        user_id=user_id,
        scope="api",
        amr=("pwd",),
        expires_at=store.clock() + 3600,
    )


async def test_a_rotation_that_lands_after_the_sign_out_leaves_no_live_token(
    world: World,
) -> None:
    store = OAuthStore(world.db, world.clock)
    save(store, "first", "phone", world.rita)
    save(store, "tablet-1", "tablet", world.rita)
    record = store.usable_refresh_token("first")
    assert record is not None and store.spend_refresh_token(record)  # a refresh under way...
    await world.accounts.change_password(
        world.rita, "tablet", {"current_password": PASSWORD, "new_password": "fresh passphrase"}
    )
    save(store, "second", "phone", world.rita)  # ...stores its new token after the change
    assert store.usable_refresh_token("second") is None
    assert await world.live_families() == {"tablet"}
    save(store, "tablet-2", "tablet", world.rita)  # a family not signed out rotates as ever
    assert store.usable_refresh_token("tablet-2") is not None
