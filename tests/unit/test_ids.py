"""Random ids from a pooled os.urandom draw: the formats of uuid4, no repeats, fork-safe."""

from __future__ import annotations

import re
import uuid

import pytest

from propdev.ids import RandomPool, new_hex_id, new_uuid


def test_hex_ids_are_32_hex_digits_and_do_not_repeat_across_refills() -> None:
    pool = RandomPool(batch=64)  # a refill every 4 ids

    drawn = [pool.hex_id() for _ in range(1000)]

    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in drawn)
    assert len(set(drawn)) == 1000


def test_uuids_are_random_version_4_uuids() -> None:
    drawn = [new_uuid() for _ in range(1000)]

    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in drawn)
    assert len({str(u) for u in drawn}) == 1000
    assert re.fullmatch(r"[0-9a-f]{32}", new_hex_id())


def test_a_forked_child_draws_a_pool_of_its_own() -> None:
    pool = RandomPool()
    pool.take16()
    drawn_before = pool._pool
    pool._pid = -1  # as a child sees it: the pool was drawn by another process

    pool.take16()

    assert pool._pool != drawn_before
    assert pool._at == 16


def test_the_batch_is_a_multiple_of_an_id() -> None:
    with pytest.raises(ValueError):
        RandomPool(batch=40)
