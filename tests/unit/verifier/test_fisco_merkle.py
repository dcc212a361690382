"""FISCO BCOS 3.x binary Merkle tree: roots, node-format proofs, verification, tampering."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import VectorLoader, load_shared_vector
from verifier.errors import MalformedEvidence, MalformedProof, ProofMismatch, VerificationError
from verifier.hashing import Hasher, keccak256, sm3
from verifier.merkle.fisco import (
    EMPTY_ROOT,
    MAX_PROOF_ITEMS,
    MAX_PROOF_LEVELS,
    LeafPositions,
    compute_merkle_proof,
    compute_merkle_root,
    verify_merkle_proof,
)

WECROSS = "fisco/wecross_bcos3_vectors.json"
DOC = "fisco/fisco_doc_examples.json"
HASHERS = [pytest.param(keccak256, id="keccak256"), pytest.param(sm3, id="sm3")]


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _leaves(n: int, salt: int = 0) -> list[bytes]:
    return [keccak256(f"leaf-{salt}-{i}".encode()) for i in range(n)]


def _marker(count: int) -> str:
    return f"{count:08x}" + "0" * 56


def _wecross(shared_vector: VectorLoader) -> dict[str, Any]:
    data: dict[str, Any] = shared_vector(WECROSS)
    return data


# --- real vectors -------------------------------------------------------------------------


@pytest.mark.vectors
def test_wecross_tx_proof_reaches_txs_root(shared_vector: VectorLoader) -> None:
    """Block 60's 10-level txProof (29 items, one odd single node) leads to txsRoot."""
    v = _wecross(shared_vector)
    proof = v["tx"]["txProof"]
    assert len(proof) == 29
    assert proof.count(_marker(1)) == 1
    verify_merkle_proof(
        proof, _b(v["tx"]["hash"]), _b(v["block"]["txsRoot"]), keccak256, check="transaction_proof"
    )


@pytest.mark.vectors
def test_wecross_receipt_proof_reaches_receipts_root(shared_vector: VectorLoader) -> None:
    """Block 60's 10-level txReceiptProof (30 items, duplicate leaves) leads to receiptsRoot."""
    v = _wecross(shared_vector)
    proof = v["receipt"]["txReceiptProof"]
    assert len(proof) == 30
    verify_merkle_proof(
        proof,
        _b(v["receipt"]["hash"]),
        _b(v["block"]["receiptsRoot"]),
        keccak256,
        check="receipt_proof",
    )


@pytest.mark.vectors
def test_builder_reproduces_the_node_receipt_proof(shared_vector: VectorLoader) -> None:
    """707 identical receipts give block 60's receiptsRoot and, item for item, the node's proof."""
    v = _wecross(shared_vector)
    leaves = [_b(v["receipt"]["hash"])] * 707
    assert compute_merkle_root(leaves, keccak256) == _b(v["block"]["receiptsRoot"])
    for index in (0, 1, 400, 706):  # every duplicate gets the first occurrence's proof
        assert compute_merkle_proof(leaves, index, keccak256) == v["receipt"]["txReceiptProof"]


@pytest.mark.vectors
def test_single_tx_block_roots_are_the_hashes(shared_vector: VectorLoader) -> None:
    """Block 72 has one tx: txsRoot is the tx hash and receiptsRoot the receipt hash."""
    v = _wecross(shared_vector)
    tx_hash, receipt_hash = _b(v["tx0"]["hash"]), _b(v["receipt0"]["hash"])
    assert compute_merkle_root([tx_hash], keccak256) == _b(v["block0"]["txsRoot"])
    assert compute_merkle_root([receipt_hash], keccak256) == _b(v["block0"]["receiptsRoot"])
    assert compute_merkle_proof([tx_hash], 0, keccak256) == [tx_hash.hex()]
    verify_merkle_proof([tx_hash.hex()], tx_hash, tx_hash, keccak256, check="transaction_proof")


@pytest.mark.vectors
def test_doc_one_item_proofs(shared_vector: VectorLoader) -> None:
    """The doc's 1-item txProof/txReceiptProof are the leaf; the SM one is block 2's root."""
    doc = shared_vector(DOC)
    sm_receipt, block2 = doc["sm_chain"]["deploy_receipt_block2"], doc["sm_chain"]["block2_header"]
    verify_merkle_proof(
        sm_receipt["txReceiptProof"],
        _b(sm_receipt["hash"]),
        _b(block2["receiptsRoot"]),
        sm3,
        check="receipt_proof",
    )
    tx = doc["keccak_chain"]["transaction"]
    verify_merkle_proof(tx["txProof"], _b(tx["hash"]), _b(tx["hash"]), keccak256, check="tx")


# --- roots and round trips ----------------------------------------------------------------


@pytest.mark.parametrize("hasher", HASHERS)
def test_small_trees_by_hand(hasher: Hasher) -> None:
    """0 leaves: zero root; 1: the leaf; 2: H(a‖b); 3: the lone node is hashed alone."""
    a, b, c = _leaves(3)
    assert compute_merkle_root([], hasher) == EMPTY_ROOT
    assert compute_merkle_root([a], hasher) == a
    assert compute_merkle_root([a, b], hasher) == hasher(a + b)
    assert compute_merkle_root([a, b, c], hasher) == hasher(hasher(a + b) + hasher(c))
    assert compute_merkle_proof([a, b, c], 2, hasher) == [
        _marker(1),
        c.hex(),
        _marker(2),
        hasher(a + b).hex(),
        hasher(c).hex(),
    ]


@pytest.mark.parametrize("hasher", HASHERS)
def test_round_trip_every_index(hasher: Hasher) -> None:
    """For n = 1..40 every leaf's proof verifies against the root, with or without 0x."""
    for n in range(1, 41):
        leaves = _leaves(n, salt=n)
        root = compute_merkle_root(leaves, hasher)
        for index, leaf in enumerate(leaves):
            proof = compute_merkle_proof(leaves, index, hasher)
            verify_merkle_proof(proof, leaf, root, hasher, check="receipt_proof")
            prefixed = ["0x" + item for item in proof]
            verify_merkle_proof(prefixed, leaf, root, hasher, check="receipt_proof")
            with pytest.raises(ProofMismatch):
                verify_merkle_proof(proof, hasher(leaf), root, hasher, check="receipt_proof")


def test_proof_does_not_bind_the_index() -> None:
    """As on the node, a leaf's pair sibling verifies with the same proof (callers must not
    infer a transaction's position from a proof)."""
    leaves = _leaves(6)
    root = compute_merkle_root(leaves, keccak256)
    proof = compute_merkle_proof(leaves, 2, keccak256)
    verify_merkle_proof(proof, leaves[3], root, keccak256, check="receipt_proof")
    with pytest.raises(ProofMismatch):
        verify_merkle_proof(proof, leaves[4], root, keccak256, check="receipt_proof")


def test_duplicate_leaves_prove_the_first_occurrence() -> None:
    """A later duplicate gets the first occurrence's proof, as the node's lookup by hash does."""
    a, b, c = _leaves(3)
    leaves = [a, b, c, b, a]
    assert compute_merkle_proof(leaves, 3, keccak256) == compute_merkle_proof(leaves, 1, keccak256)
    assert compute_merkle_proof(leaves, 4, keccak256) == compute_merkle_proof(leaves, 0, keccak256)


def test_builder_rejects_bad_input() -> None:
    """Out-of-range indices and non-32-byte leaves are MalformedEvidence, not IndexError."""
    with pytest.raises(MalformedEvidence, match="index"):
        compute_merkle_proof(_leaves(3), 3, keccak256)
    with pytest.raises(MalformedEvidence, match="index"):
        compute_merkle_proof([], 0, keccak256)
    with pytest.raises(MalformedEvidence, match=r"leaves\[1\]"):
        compute_merkle_root([bytes(32), b"short"], keccak256)


# --- rejection ----------------------------------------------------------------------------


def _case(n: int = 11, index: int = 5) -> tuple[list[str], bytes, bytes]:
    leaves = _leaves(n)
    return (
        compute_merkle_proof(leaves, index, keccak256),
        leaves[index],
        compute_merkle_root(leaves, keccak256),
    )


def _fails(proof: Any, leaf: bytes, root: bytes, error: type[Exception]) -> VerificationError:
    with pytest.raises(error) as info:
        verify_merkle_proof(proof, leaf, root, keccak256, check="receipt_proof")
    assert isinstance(info.value, VerificationError)
    assert info.value.check == "receipt_proof"
    return info.value


def test_wrong_root() -> None:
    """A valid proof against another root: ProofMismatch with both roots."""
    proof, leaf, root = _case()
    err = _fails(proof, leaf, keccak256(root), ProofMismatch)
    assert isinstance(err, ProofMismatch)
    assert err.computed == "0x" + root.hex()


def test_empty_and_non_list_proofs() -> None:
    """An empty proof, a bare string and a dict are MalformedProof."""
    _, leaf, root = _case()
    _fails([], leaf, root, MalformedProof)
    _fails("00" * 32, leaf, root, MalformedProof)
    _fails({"a": 1}, leaf, root, MalformedProof)


def test_truncated_proofs() -> None:
    """Dropping the last item, the last level, or items mid-way never verifies."""
    proof, leaf, root = _case()
    _fails(proof[:-1], leaf, root, MalformedProof)
    _fails(proof[:-3], leaf, root, ProofMismatch)
    _fails(proof[3:], leaf, root, ProofMismatch)


def test_bad_items() -> None:
    """Non-hex, short, long, non-string items: MalformedProof naming the item."""
    proof, leaf, root = _case()
    for bad in ("zz" * 32, "ab" * 31, "ab" * 33, 7, None, "0x" + "ab" * 31, " " + "ab" * 32):
        tampered: list[Any] = list(proof)
        tampered[1] = bad
        err = _fails(tampered, leaf, root, MalformedProof)
        assert isinstance(err, MalformedProof)
        assert err.index == 1


def test_bad_count_markers() -> None:
    """Counts other than 1/2 and non-zero marker padding are rejected."""
    proof, leaf, root = _case()
    for bad in (_marker(0), _marker(3), _marker(0xFFFFFFFF), "00000002" + "0" * 55 + "1"):
        tampered = list(proof)
        tampered[3] = bad
        err = _fails(tampered, leaf, root, MalformedProof)
        assert isinstance(err, MalformedProof)
        assert err.index == 3


def test_lone_last_level_is_rejected() -> None:
    """``[marker(1), leaf]`` claims root = H(leaf): no real tree ends on a single node."""
    leaf = _leaves(1)[0]
    _fails([_marker(1), leaf.hex()], leaf, keccak256(leaf), MalformedProof)


def test_one_item_proof_must_be_the_leaf() -> None:
    """A one-item proof that is not the leaf fails even if leaf == root."""
    a, b = _leaves(2)
    _fails([b.hex()], a, a, ProofMismatch)
    _fails([a.hex()], a, b, ProofMismatch)


def test_leaf_not_in_first_pair() -> None:
    """A proof for another leaf fails at level 0 with the pair and the leaf in the error."""
    proof, _, root = _case()
    stranger = keccak256(b"stranger")
    err = _fails(proof, stranger, root, ProofMismatch)
    assert isinstance(err, ProofMismatch)
    assert err.index == 0
    assert stranger.hex() == err.computed


def test_too_many_levels() -> None:
    """More than MAX_PROOF_LEVELS levels is refused before it is walked to the end."""
    leaf = _leaves(1)[0]
    proof, current = [], leaf
    for _ in range(MAX_PROOF_LEVELS + 1):
        proof += [_marker(2), current.hex(), current.hex()]
        current = keccak256(current + current)
    _fails(proof, leaf, current, MalformedProof)


def test_leaf_and_root_must_be_hashes() -> None:
    """A leaf or root that is not 32 bytes is MalformedEvidence."""
    proof, leaf, root = _case()
    _fails(proof, leaf[:31], root, MalformedEvidence)
    _fails(proof, leaf, root + b"\x00", MalformedEvidence)


def _flip(proof: list[str], item: int, byte: int, xor: int) -> list[str]:
    raw = bytearray(bytes.fromhex(proof[item]))
    raw[byte % 32] ^= xor
    tampered = list(proof)
    tampered[item] = raw.hex()
    return tampered


@settings(max_examples=150, deadline=None)
@given(item=st.integers(0, 28), byte=st.integers(0, 31), xor=st.integers(1, 255))
def test_any_byte_flip_in_a_synthetic_proof_is_rejected(item: int, byte: int, xor: int) -> None:
    """Flipping any byte of any item of a 6-level proof is rejected."""
    leaves = _leaves(37)
    proof = compute_merkle_proof(leaves, 21, keccak256)
    root = compute_merkle_root(leaves, keccak256)
    tampered = _flip(proof, item % len(proof), byte, xor)
    with pytest.raises(VerificationError):
        verify_merkle_proof(tampered, leaves[21], root, keccak256, check="receipt_proof")


@pytest.mark.vectors
@settings(max_examples=150, deadline=None)
@given(
    which=st.sampled_from(["txProof", "txReceiptProof"]),
    item=st.integers(0, 29),
    byte=st.integers(0, 31),
    xor=st.integers(1, 255),
)
def test_any_byte_flip_in_the_wecross_proofs_is_rejected(
    which: str, item: int, byte: int, xor: int
) -> None:
    """Flipping any byte of block 60's real tx or receipt proof is rejected."""
    v = copy.deepcopy(load_shared_vector(WECROSS))
    source = v["tx"] if which == "txProof" else v["receipt"]
    root = v["block"]["txsRoot"] if which == "txProof" else v["block"]["receiptsRoot"]
    proof = source[which]
    tampered = _flip(proof, item % len(proof), byte, xor)
    with pytest.raises(VerificationError):
        verify_merkle_proof(tampered, _b(source["hash"]), _b(root), keccak256, check=which)


# --- leaf positions: what the transaction/receipt binding rests on -------------------------


def _positions(leaves: list[bytes], index: int, *, as_node: bool = True) -> LeafPositions:
    proof = compute_merkle_proof(leaves, index, keccak256, as_node=as_node)
    root = compute_merkle_root(leaves, keccak256)
    return verify_merkle_proof(proof, leaves[index], root, keccak256, check="receipt_proof")


def test_positions_of_every_index_of_distinct_leaves() -> None:
    """For n = 1..40 the path of leaf i says exactly i: nothing ambiguous, no other index."""
    for n in range(1, 41):
        leaves = _leaves(n, salt=100 + n)
        levels = (n - 1).bit_length()
        for index in range(n):
            positions = _positions(leaves, index)
            assert positions == LeafPositions(first=index, ambiguous=0, levels=levels)
            assert [j for j in range(n) if positions.allows(j)] == [index]


def test_sibling_twins_allow_both_positions() -> None:
    """[a, a, b, c]: either a's proof is the first one's; it allows 0 and 1, nothing else."""
    a, b, c = _leaves(3)
    leaves = [a, a, b, c]
    for index in (0, 1):
        positions = _positions(leaves, index)
        assert positions == LeafPositions(first=0, ambiguous=0b01, levels=2)
        assert [j for j in range(4) if positions.allows(j)] == [0, 1]
    assert _positions(leaves, 1, as_node=False) == positions


def test_twin_subtrees_free_the_upper_bit() -> None:
    """[a, b, a, b]: the level-1 pair is two equal subtrees, so leaf 0's path also fits 2."""
    a, b = _leaves(2)
    leaves = [a, b, a, b]
    positions = _positions(leaves, 2)
    assert positions == LeafPositions(first=0, ambiguous=0b10, levels=2)
    assert [j for j in range(4) if positions.allows(j)] == [0, 2]
    positions = _positions(leaves, 3)
    assert positions == LeafPositions(first=1, ambiguous=0b10, levels=2)
    assert [j for j in range(4) if positions.allows(j)] == [1, 3]


def test_all_equal_leaves_are_ambiguous_where_pairs_are_full() -> None:
    """Seven equal leaves: levels 0 and 1 hold equal pairs; level 2 pairs H(H(xx)H(xx)) with
    H(H(xx)H(x)), which differ, so only positions 0..3 fit the node's proof."""
    x = _leaves(1)[0]
    positions = _positions([x] * 7, 6)
    assert positions == LeafPositions(first=0, ambiguous=0b011, levels=3)
    assert [j for j in range(7) if positions.allows(j)] == [0, 1, 2, 3]


def test_later_twin_needs_its_own_path() -> None:
    """[a, b, c, a]: the node proves leaf 3 with leaf 0's path, which does not allow 3; the
    path built for index 3 itself allows 3 and not 0."""
    a, b, c = _leaves(3)
    leaves = [a, b, c, a]
    node = _positions(leaves, 3)
    assert node == LeafPositions(first=0, ambiguous=0, levels=2)
    assert node.allows(0)
    assert not node.allows(3)
    own = _positions(leaves, 3, as_node=False)
    assert own == LeafPositions(first=3, ambiguous=0, levels=2)
    assert own.allows(3)
    assert not own.allows(0)


def test_a_path_allows_no_position_outside_it() -> None:
    """Indices past the path's levels, negative indices and non-integers are never allowed."""
    a, b = _leaves(2)
    positions = _positions([a, a, b], 1)
    assert positions == LeafPositions(first=0, ambiguous=0b01, levels=2)
    assert positions.allows(1)
    for index in (4, 5, 8, 1 << 70, -1, -4):
        assert not positions.allows(index)
    for bad in (True, False, 1.0, "1", None):
        assert not positions.allows(bad)  # type: ignore[arg-type]
    single = verify_merkle_proof([a.hex()], a, a, keccak256, check="receipt_proof")
    assert single == LeafPositions(first=0, ambiguous=0, levels=0)
    assert single.allows(0)
    assert not single.allows(1)


def test_equal_pair_members_resolve_to_the_first() -> None:
    """With both members of a pair equal to the running hash, the path takes the left one
    (bit clear) and marks the level ambiguous; unequal members are never ambiguous."""
    a, b = _leaves(2)
    assert _positions([a, a], 1) == LeafPositions(first=0, ambiguous=1, levels=1)
    assert _positions([a, b], 1) == LeafPositions(first=1, ambiguous=0, levels=1)
    positions = _positions([a, a, a], 2)  # the node proves leaf 0 for leaf 2
    assert positions == LeafPositions(first=0, ambiguous=0b01, levels=2)
    assert [j for j in range(3) if positions.allows(j)] == [0, 1]
    # a lone node (count-1 level) has no twin: [b, a, a] leaf 2's own path is exactly 2
    assert _positions([b, a, a], 2, as_node=False) == LeafPositions(first=2, ambiguous=0, levels=2)


def _lone_levels(leaf: bytes, singles: int) -> tuple[list[str], bytes]:
    """``singles`` count-1 levels then one count-2 level (odd-tail shape), and its root."""
    proof, current = [], leaf
    for _ in range(singles):
        proof += [_marker(1), current.hex()]
        current = keccak256(current)
    proof += [_marker(2), current.hex(), current.hex()]
    return proof, keccak256(current + current)


def test_level_cap_is_reached_before_the_item_cap() -> None:
    """Count-1 levels take 2 items each: 65 levels fit the item cap, so the level cap decides."""
    leaf = _leaves(1)[0]
    proof, root = _lone_levels(leaf, MAX_PROOF_LEVELS - 1)
    assert len(proof) < MAX_PROOF_ITEMS
    positions = verify_merkle_proof(proof, leaf, root, keccak256, check="receipt_proof")
    assert positions.levels == MAX_PROOF_LEVELS
    proof, root = _lone_levels(leaf, MAX_PROOF_LEVELS)
    assert len(proof) <= MAX_PROOF_ITEMS
    err = _fails(proof, leaf, root, MalformedProof)
    assert isinstance(err, MalformedProof)
    assert f"more than {MAX_PROOF_LEVELS} levels" in err.reason
    assert err.index == 2 * MAX_PROOF_LEVELS


def test_item_cap_boundary() -> None:
    """64 full levels are exactly MAX_PROOF_ITEMS items and verify; one more item does not."""
    leaf = _leaves(1)[0]
    proof, current = [], leaf
    for _ in range(MAX_PROOF_LEVELS):
        proof += [_marker(2), current.hex(), current.hex()]
        current = keccak256(current + current)
    assert len(proof) == MAX_PROOF_ITEMS
    positions = verify_merkle_proof(proof, leaf, current, keccak256, check="receipt_proof")
    assert positions == LeafPositions(
        first=0, ambiguous=(1 << MAX_PROOF_LEVELS) - 1, levels=MAX_PROOF_LEVELS
    )
    err = _fails([*proof, _marker(2)], leaf, current, MalformedProof)
    assert f"at most {MAX_PROOF_ITEMS}" in err.reason


def test_error_details_name_the_item_and_the_values() -> None:
    """Errors carry what the audit log records: the item index, field and both values."""
    a, b = _leaves(2)
    err = _fails([b.hex()], a, a, ProofMismatch)
    assert isinstance(err, ProofMismatch)
    assert (err.index, err.expected, err.computed) == (0, a.hex(), b.hex())
    err = _fails([_marker(1), a.hex()], a, keccak256(a), MalformedProof)
    assert isinstance(err, MalformedProof)
    assert err.index == 0
    proof, leaf, root = _case()
    err = _fails([*proof[:-3], _marker(1), proof[-2]], leaf, root, MalformedProof)
    assert isinstance(err, MalformedProof)
    assert err.index == len(proof) - 3
    tampered = list(proof)
    tampered[4] = tampered[5] = keccak256(b"x").hex()
    err = _fails(tampered, leaf, root, ProofMismatch)
    assert isinstance(err, ProofMismatch)
    assert err.index == 3
    assert err.expected == f"{tampered[4]} or {tampered[5]}"
    err = _fails(proof, leaf, keccak256(root), ProofMismatch)
    assert isinstance(err, ProofMismatch)
    assert err.expected == "0x" + keccak256(root).hex()
    for bad_leaf, bad_root, name in ((leaf[:31], root, "leaf"), (leaf, root[:31], "root")):
        err = _fails(proof, bad_leaf, bad_root, MalformedEvidence)
        assert isinstance(err, MalformedEvidence)
        assert err.field == name


def test_builder_index_errors() -> None:
    """A bool is not an index (True would prove leaf 1); the error names the valid range."""
    leaves = _leaves(3)
    for bad in (True, False, -1, 3):
        with pytest.raises(MalformedEvidence) as info:
            compute_merkle_proof(leaves, bad, keccak256)
        assert info.value.field == "index"
        assert "outside 0..2" in info.value.reason


def test_valid_items_in_a_non_list_container_are_refused() -> None:
    """A dict (or a set) holding the right items is not a proof: the type is checked first."""
    proof, leaf, root = _case(n=2, index=0)
    assert len(set(proof)) == len(proof) == 3  # a dict of these keys keeps every item
    _fails(dict.fromkeys(proof, 1), leaf, root, MalformedProof)
    _fails(iter(proof), leaf, root, MalformedProof)
    verify_merkle_proof(tuple(proof), leaf, root, keccak256, check="receipt_proof")
