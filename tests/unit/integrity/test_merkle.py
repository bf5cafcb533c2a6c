"""RFC 6962 Merkle hashing: the reference vectors, and every audit path of small trees."""

from __future__ import annotations

import hashlib

from propdev.integrity.merkle import inclusion_path, leaf_hash, node_hash, root, verify_inclusion


def test_the_roots_are_the_rfc_6962_vectors() -> None:
    assert root([]).hex() == hashlib.sha256(b"").hexdigest()
    assert root([]).hex().startswith("e3b0c442")
    assert root([b"0", b"1", b"2"]).hex() == (
        "725d5230db68f557470dc35f1d8865813acd7ebb07ad152774141decbae71327"
    )
    assert root([b"a"]) == hashlib.sha256(b"\x00a").digest()
    assert root([b"a", b"b"]) == node_hash(leaf_hash(b"a"), leaf_hash(b"b"))


def test_every_leaf_of_trees_up_to_seventeen_is_proved_and_no_other_leaf_is() -> None:
    for size in range(1, 18):
        leaves = [f"leaf {i}".encode() for i in range(size)]
        tree_root = root(leaves)
        for index in range(size):
            path = inclusion_path(index, leaves)
            assert verify_inclusion(index, size, leaf_hash(leaves[index]), path, tree_root)
            assert not verify_inclusion(index, size, leaf_hash(b"another"), path, tree_root)
            if size > 1:
                other = (index + 1) % size
                assert not verify_inclusion(other, size, leaf_hash(leaves[index]), path, tree_root)


def test_a_proof_with_a_short_hash_or_an_index_past_the_tree_is_refused() -> None:
    leaves = [b"0", b"1", b"2"]
    path = inclusion_path(1, leaves)
    assert not verify_inclusion(1, 3, leaf_hash(b"1"), [path[0][:31], *path[1:]], root(leaves))
    assert not verify_inclusion(3, 3, leaf_hash(b"1"), path, root(leaves))
