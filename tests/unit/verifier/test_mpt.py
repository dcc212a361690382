"""Merkle Patricia Trie: builder cross-checked with py-trie, proofs verified, tampering rejected."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import rlp as pyrlp
from hypothesis import given, settings
from hypothesis import strategies as st
from trie.hexary import HexaryTrie

from tests.conftest import VectorLoader
from verifier.errors import MalformedEvidence, MalformedProof, ProofMismatch, VerificationError
from verifier.hashing import keccak256
from verifier.merkle.mpt import (
    MAX_NODE_SIZE,
    compute_mpt_proof,
    compute_mpt_root,
    parse_proof_nodes,
    verify_mpt_proof,
)
from verifier.rlp import encode, encode_list_of_encoded, encode_uint

EMPTY_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
RECEIPT_FILES = [
    "evm/mainnet_1150000_homestead_receipts.json",
    "evm/mainnet_14194126_london_receipts.json",
    "evm/mainnet_19432087_cancun_blob_receipts.json",
    "evm/mainnet_19432673_cancun_small_block.json",
    "evm/mainnet_21925176_cancun_receipts_helios.json",
]


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _key(i: int) -> bytes:
    return encode(encode_uint(i))


def _index_items(count: int, size: int = 40, minimum: int = 1) -> dict[bytes, bytes]:
    """Receipt-trie shaped items: keys rlp(0..count-1), values of varying length >= minimum."""
    return {_key(i): bytes([i % 251]) * (minimum + (i * 7 + size) % 90) for i in range(count)}


def _pytrie(items: dict[bytes, bytes]) -> HexaryTrie:
    trie = HexaryTrie({})
    for key, value in items.items():
        trie[key] = value
    return trie


def _pytrie_proof(trie: HexaryTrie, key: bytes) -> list[bytes]:
    """py-trie's proof of ``key`` (decoded nodes, embedded ones listed too), RLP-encoded."""
    nodes: Any = trie.get_proof(key)  # type: ignore[no-untyped-call]
    return [pyrlp.encode(node) for node in nodes]


def _geth_layout(trie: HexaryTrie, key: bytes) -> list[bytes]:
    """py-trie proof -> geth wire format: the root, then only nodes of 32 bytes or more."""
    encoded = _pytrie_proof(trie, key)
    return [encoded[0]] + [node for node in encoded[1:] if len(node) >= 32]


_dicts = st.dictionaries(
    st.binary(min_size=0, max_size=6), st.binary(min_size=1, max_size=70), max_size=40
)


# --- builder, cross-checked with py-trie ---------------------------------------------------


def test_empty_trie_root() -> None:
    """An empty trie has root keccak(rlp(b""))."""
    assert compute_mpt_root({}) == EMPTY_ROOT


@settings(max_examples=120, deadline=None)
@given(items=_dicts)
def test_root_and_proofs_match_pytrie(items: dict[bytes, bytes]) -> None:
    """Root and every proof equal py-trie's, and each proof verifies to its value.

    Keys of different lengths put values in branches, so the branch size bound is raised.
    """
    trie = _pytrie(items)
    root = compute_mpt_root(items)
    assert root == trie.root_hash
    for key, value in items.items():
        proof = compute_mpt_proof(items, key)
        assert proof == _geth_layout(trie, key)
        assert verify_mpt_proof(root, key, proof, check="t", max_node_size=2048) == value


@settings(max_examples=25, deadline=None)
@given(count=st.integers(1, 300), size=st.integers(1, 60))
def test_receipt_shaped_tries_match_pytrie(count: int, size: int) -> None:
    """Tries keyed by rlp(index) of any size (odd and even counts) match py-trie."""
    items = _index_items(count, size)
    root = compute_mpt_root(items)
    assert root == _pytrie(items).root_hash
    for i in {0, count // 2, count - 1} | {i for i in (127, 128, 129) if i < count}:
        assert (
            verify_mpt_proof(root, _key(i), compute_mpt_proof(items, _key(i)), check="t")
            == (items[_key(i)])
        )


@pytest.mark.parametrize("count", [1, 2, 127, 128, 129, 130, 257])
def test_key_length_boundaries(count: int) -> None:
    """Keys rlp(0), rlp(127), rlp(128), rlp(129) (1 and 2 bytes) prove in tries around them."""
    items = _index_items(count)
    trie = _pytrie(items)
    root = compute_mpt_root(items)
    assert root == trie.root_hash
    for i in (0, 127, 128, 129):
        if i < count:
            proof = compute_mpt_proof(items, _key(i))
            assert proof == _geth_layout(trie, _key(i))
            assert verify_mpt_proof(root, _key(i), proof, check="t") == items[_key(i)]


def test_pytrie_layout_with_embedded_nodes_is_accepted() -> None:
    """py-trie's proofs list embedded nodes again; the verifier accepts that layout too."""
    items = {b"\x01": b"a", b"\x02": b"b" * 40, b"\x03": b"c"}
    trie = _pytrie(items)
    for key, value in items.items():
        proof = _pytrie_proof(trie, key)
        assert verify_mpt_proof(trie.root_hash, key, proof, check="t") == value


def test_other_hash_functions() -> None:
    """The hash function is a parameter: a sha256 trie proves under sha256 only."""

    def sha256(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    items = _index_items(50)
    root = compute_mpt_root(items, sha256)
    proof = compute_mpt_proof(items, _key(7), sha256)
    assert verify_mpt_proof(root, _key(7), proof, hasher=sha256, check="t") == items[_key(7)]
    with pytest.raises(ProofMismatch):
        verify_mpt_proof(root, _key(7), proof, check="t")


def test_builder_rejects_bad_input() -> None:
    """An absent key, an empty value or a non-bytes key is refused by the builder."""
    with pytest.raises(MalformedEvidence):
        compute_mpt_proof(_index_items(3), _key(3))
    with pytest.raises(MalformedEvidence):
        compute_mpt_root({b"\x01": b""})
    with pytest.raises(MalformedEvidence):
        compute_mpt_root({"k": b"v"})  # type: ignore[dict-item]


# --- verifier: rejections ------------------------------------------------------------------

ITEMS = _index_items(200, minimum=40)  # every leaf is hashed, none embedded
ROOT = compute_mpt_root(ITEMS)
KEY = _key(100)
PROOF = compute_mpt_proof(ITEMS, KEY)


def test_fixture_proof_has_several_hashed_nodes() -> None:
    """The proof used below has at least three nodes, so flips hit inner and leaf nodes."""
    assert len(PROOF) >= 3
    assert verify_mpt_proof(ROOT, KEY, PROOF, check="t") == ITEMS[KEY]


@settings(max_examples=150, deadline=None)
@given(node=st.integers(0, 10), position=st.integers(0, 10_000), xor=st.integers(1, 255))
def test_any_byte_flip_is_rejected_at_that_node(node: int, position: int, xor: int) -> None:
    """Flipping any byte of any node raises ProofMismatch naming that node."""
    tampered = list(PROOF)
    node %= len(tampered)
    raw = bytearray(tampered[node])
    raw[position % len(raw)] ^= xor
    tampered[node] = bytes(raw)
    with pytest.raises(ProofMismatch) as info:
        verify_mpt_proof(ROOT, KEY, tampered, check="receipt_proof")
    assert info.value.index == node
    assert info.value.check == "receipt_proof"


def test_wrong_root() -> None:
    """A proof checked against another root fails at node 0 with expected and computed hashes."""
    with pytest.raises(ProofMismatch) as info:
        verify_mpt_proof(EMPTY_ROOT, KEY, PROOF, check="t")
    assert info.value.index == 0
    assert info.value.expected == "0x" + EMPTY_ROOT.hex()
    assert info.value.computed == "0x" + keccak256(PROOF[0]).hex()


def test_truncated_proof() -> None:
    """A proof missing its last node fails where the node should be."""
    with pytest.raises(MalformedProof) as info:
        verify_mpt_proof(ROOT, KEY, PROOF[:-1], check="t")
    assert info.value.index == len(PROOF) - 1


def test_empty_proof() -> None:
    """An empty proof is malformed."""
    with pytest.raises(MalformedProof):
        verify_mpt_proof(ROOT, KEY, [], check="t")


def test_extra_trailing_node() -> None:
    """A node after the value is rejected, naming its position."""
    with pytest.raises(MalformedProof) as info:
        verify_mpt_proof(ROOT, KEY, [*PROOF, PROOF[-1]], check="t")
    assert info.value.index == len(PROOF)


@pytest.mark.parametrize("other", [0, 99, 101, 127, 128, 199])
def test_proof_replayed_under_another_key(other: int) -> None:
    """The proof of index 100 does not prove any other index."""
    with pytest.raises(VerificationError):
        verify_mpt_proof(ROOT, _key(other), PROOF, check="t")


def test_embedded_siblings_are_proven_by_the_same_nodes() -> None:
    """Short values are embedded in their branch, so one proof also proves its siblings."""
    items = {_key(i): bytes([i]) * 3 for i in range(20)}
    root = compute_mpt_root(items)
    proof = compute_mpt_proof(items, _key(5))
    assert all(len(node) >= 32 for node in proof)
    for i in range(1, 16):
        assert verify_mpt_proof(root, _key(i), proof, check="t") == items[_key(i)]


def test_absent_keys_are_reported_as_absence() -> None:
    """A proof that shows the key absent raises ProofMismatch, never returns None."""
    items = {b"\x12\x34": b"x" * 40, b"\x56\x78": b"y" * 40}
    root = compute_mpt_root(items)
    proof = compute_mpt_proof(items, b"\x12\x34")
    for key in (b"\x12\x99", b"\x34\x56", b"\x12"):
        with pytest.raises(ProofMismatch) as info:
            verify_mpt_proof(root, key, proof, check="t")
        assert "absence" in info.value.computed


def test_size_and_count_bounds() -> None:
    """Too many nodes, or an inner node above max_node_size, is refused before hashing."""
    with pytest.raises(MalformedProof):
        verify_mpt_proof(ROOT, KEY, PROOF, check="t", max_nodes=len(PROOF) - 1)
    with pytest.raises(MalformedProof) as info:
        verify_mpt_proof(ROOT, KEY, [b"\xc0" * (MAX_NODE_SIZE + 1), *PROOF[1:]], check="t")
    assert info.value.index == 0
    with pytest.raises(MalformedProof):
        verify_mpt_proof(ROOT, KEY, PROOF, check="t", max_value_size=1)
    with pytest.raises(MalformedEvidence):
        verify_mpt_proof(ROOT[:31], KEY, PROOF, check="t")


@pytest.mark.parametrize(
    ("node", "key"),
    [
        (b"\x83abc", b"\x01"),  # not a list
        (b"\xc0\x80", b"\x01"),  # trailing bytes after the list
        (encode([b"a", b"b", b"c"]), b"\x01"),  # 3 items
        (encode([b"\x40", b"v"]), b"\x01"),  # hex-prefix flag 4
        (encode([b"\x01\x23", b"v"]), b"\x01"),  # even extension path, non-zero pad nibble
        (encode([b"\x00", b"\x11" * 32]), b"\x01"),  # extension with an empty path
        (encode([b"\x20", [b"v"]]), b""),  # leaf whose value is a list
        (encode([b"\x20", b""]), b""),  # leaf with an empty value
        (encode([b"\x11" * 5] * 16 + [b""]), b"\x01"),  # 5-byte child reference
        (encode([[b"\x20", b"v" * 40]] + [b""] * 16), b"\x01"),  # embedded node >= 32 bytes
        (encode([b""] * 16 + [[b"v"]]), b""),  # branch value that is a list
        (b"\xc3\x81\x05\x80", b"\x01"),  # non-canonical item inside the node
    ],
)
def test_malformed_nodes(node: bytes, key: bytes) -> None:
    """Nodes that hash correctly but are not well-formed trie nodes raise MalformedProof."""
    with pytest.raises(MalformedProof) as info:
        verify_mpt_proof(keccak256(node), key, [node], check="t")
    assert info.value.index == 0
    assert info.value.check == "t"


def test_branch_value_slot() -> None:
    """A key that ends at a branch proves the branch's value (tries with prefix keys)."""
    items = {b"\x12": b"short" * 10, b"\x12\x34": b"long" * 10}
    root = compute_mpt_root(items)
    assert root == _pytrie(items).root_hash
    for key, value in items.items():
        proof = compute_mpt_proof(items, key)
        assert verify_mpt_proof(root, key, proof, check="t", max_node_size=4096) == value


def test_parse_proof_nodes() -> None:
    """Hex nodes parse; bad hex, a non-list or an empty or oversized list is refused."""
    assert parse_proof_nodes(["0xc0", "0x80"], check="t") == [b"\xc0", b"\x80"]
    with pytest.raises(MalformedProof) as info:
        parse_proof_nodes(["0xc0", "0xzz"], check="t")
    assert info.value.index == 1
    assert parse_proof_nodes(("0xc0",), check="t") == [b"\xc0"]
    for bad in ("0xc", "c0", "0xc0 80", "0x c0", 192, None):
        with pytest.raises(MalformedProof):
            parse_proof_nodes(["0xc0", bad], check="t")
    with pytest.raises(MalformedEvidence):
        parse_proof_nodes("0xc0", check="t")
    with pytest.raises(MalformedProof):
        parse_proof_nodes([], check="t")
    with pytest.raises(MalformedProof):
        parse_proof_nodes(["0xc0"] * 17, check="t")


# --- real mainnet proofs -------------------------------------------------------------------


@pytest.mark.vectors
@pytest.mark.parametrize("rel", RECEIPT_FILES)
def test_vector_proofs_verify_and_rebuild(shared_vector: VectorLoader, rel: str) -> None:
    """Every mainnet proof verifies to its value, and the builder reproduces it byte for byte."""
    v = shared_vector(rel)
    root = _b(v["header"]["receiptsRoot"])
    items = {_key(i): _b(value) for i, value in enumerate(v["receipts_consensus_rlp"])}
    assert compute_mpt_root(items) == root
    for entry in v["receipt_proofs"]:
        key, proof = _b(entry["key"]), [_b(node) for node in entry["proof"]]
        assert key == _key(int(entry["transactionIndex"], 16))
        assert verify_mpt_proof(root, key, proof, check="receipt_proof") == _b(entry["value"])
        assert compute_mpt_proof(items, key) == proof


# --- paths, embedding and absence: gaps a mutation probe found -----------------------------


def _absent(root: bytes, key: bytes, proof: list[bytes], reason: str) -> None:
    with pytest.raises(ProofMismatch) as info:
        verify_mpt_proof(root, key, proof, check="t")
    assert info.value.computed == f"absence ({reason})"
    assert info.value.expected == f"a value for key 0x{key.hex()}"
    assert info.value.check == "t"
    assert info.value.index is not None


def test_leaf_path_is_the_whole_rest_of_the_key() -> None:
    """A leaf for key 0x12 does not prove 0x1212 (path as suffix) nor 0x1234 (path as prefix)."""
    items = {b"\x12": b"v" * 40}
    root = compute_mpt_root(items)
    proof = compute_mpt_proof(items, b"\x12")
    assert verify_mpt_proof(root, b"\x12", proof, check="t") == items[b"\x12"]
    for key in (b"\x12\x12", b"\x34\x12", b"\x12\x34", b"\x01", b""):
        _absent(root, key, proof, "leaf for another key")
    # below a branch: the leaf of 0x1234 holds the path "234", which 0x5234 and 0x12341234 share
    # only as a suffix or a prefix
    items = {b"\x12\x34": b"x" * 40, b"\x56\x78": b"y" * 40}
    root = compute_mpt_root(items)
    proof = compute_mpt_proof(items, b"\x12\x34")
    for key in (b"\x12\x34\x12\x34", b"\x10\x23\x40"):
        _absent(root, key, proof, "leaf for another key")


def test_extension_path_is_compared_with_the_key() -> None:
    """Root = extension "12" over a branch: keys that leave the extension are absent."""
    items = {b"\x12\x34": b"x" * 40, b"\x12\x56": b"y" * 40}
    root = compute_mpt_root(items)
    proof = compute_mpt_proof(items, b"\x12\x34")
    assert pyrlp.decode(proof[0])[0] == b"\x00\x12"  # an even extension path "12"
    assert verify_mpt_proof(root, b"\x12\x34", proof, check="t") == items[b"\x12\x34"]
    for key in (b"\x99\x34", b"\x13\x34", b"\x02\x34", b"\x1f"):
        _absent(root, key, proof, "extension diverges from the key")


def test_key_ending_at_an_empty_branch_value_is_absent() -> None:
    """Key 0x12 ends at the branch below extension "12", whose value slot is empty."""
    items = {b"\x12\x34": b"x" * 40, b"\x12\x56": b"y" * 40}
    root = compute_mpt_root(items)
    _absent(root, b"\x12", compute_mpt_proof(items, b"\x12\x34"), "empty branch value")


def _two_leaf_trie(first: int, second: int) -> dict[bytes, bytes]:
    """Keys 0x01, 0x02: extension "0", branch, leaves [0x20, value] of 3 + len(value) bytes."""
    return {b"\x01": b"a" * first, b"\x02": b"b" * second}


def test_nodes_under_32_bytes_are_embedded_and_32_are_hashed() -> None:
    """A 31-byte leaf is embedded in its branch, a 32-byte one is referenced by hash; the
    builder and py-trie agree, and both proofs verify."""
    items = _two_leaf_trie(28, 29)  # leaf nodes of 31 and 32 bytes
    assert len(encode([b"\x20", items[b"\x01"]])) == 31
    assert len(encode([b"\x20", items[b"\x02"]])) == 32
    root = compute_mpt_root(items)
    assert root == _pytrie(items).root_hash
    embedded = compute_mpt_proof(items, b"\x01")
    hashed = compute_mpt_proof(items, b"\x02")
    assert encode([b"\x20", items[b"\x01"]]) not in embedded
    assert hashed[-1] == encode([b"\x20", items[b"\x02"]])
    assert len(hashed) == len(embedded) + 1
    for key, proof in ((b"\x01", embedded), (b"\x02", hashed)):
        assert verify_mpt_proof(root, key, proof, check="t") == items[key]


def _branch_embedding(child: bytes) -> bytes:
    """A branch whose slot 1 holds ``child`` in place, other slots and value empty."""
    return encode_list_of_encoded([_EMPTY_SLOT, child] + [_EMPTY_SLOT] * 15)


_EMPTY_SLOT = b"\x80"


def test_embedded_node_size_boundary() -> None:
    """The verifier takes an embedded node of 31 bytes and refuses one of 32 (key 0x10:
    slot 1 of the branch, then a leaf with the odd path "0", flag 0x30)."""
    leaf31 = encode([b"\x30", b"a" * 28])
    branch = _branch_embedding(leaf31)
    assert verify_mpt_proof(keccak256(branch), b"\x10", [branch], check="t") == b"a" * 28
    leaf32 = encode([b"\x30", b"a" * 29])
    branch = _branch_embedding(leaf32)
    with pytest.raises(MalformedProof) as info:
        verify_mpt_proof(keccak256(branch), b"\x10", [branch], check="t")
    assert "embedded node of 32 bytes or more" in info.value.reason


def test_repeated_embedded_node_must_match_exactly() -> None:
    """py-trie layout: the embedded node listed again is skipped only byte for byte; with a
    byte appended or dropped it is an unused trailing node."""
    leaf = encode([b"\x30", b"a" * 28])
    branch = _branch_embedding(leaf)
    root = keccak256(branch)
    assert verify_mpt_proof(root, b"\x10", [branch, leaf], check="t") == b"a" * 28
    for bad in (leaf + b"\x00", leaf[:-1], b"\x00" + leaf, leaf[1:]):
        with pytest.raises(MalformedProof) as info:
            verify_mpt_proof(root, b"\x10", [branch, bad], check="t")
        assert info.value.index == 1


def test_embedded_node_with_bytes_after_it_is_malformed() -> None:
    """An embedded node is exactly one RLP list: a byte after it in the branch, or after its
    two items inside its own list, is refused, never read as part of the node."""
    leaf = encode([b"\x30", b"a" * 10])
    padded = encode_list_of_encoded([b"\x30", encode(b"a" * 10), b"\x01"])
    for node in (
        encode_list_of_encoded([_EMPTY_SLOT, leaf, b"\x00"] + [_EMPTY_SLOT] * 15),
        _branch_embedding(padded),
    ):
        with pytest.raises(MalformedProof) as info:
            verify_mpt_proof(keccak256(node), b"\x10", [node], check="t")
        assert info.value.index == 0
    assert verify_mpt_proof(
        keccak256(_branch_embedding(leaf)), b"\x10", [_branch_embedding(leaf)], check="t"
    ) == (b"a" * 10)


# --- from the mutation run (docs/mutation.md) ----------------------------------------------


def test_value_size_bound_is_inclusive() -> None:
    """A value of exactly max_value_size bytes is accepted, one byte less of bound is not."""
    size = len(ITEMS[KEY])
    assert verify_mpt_proof(ROOT, KEY, PROOF, check="t", max_value_size=size) == ITEMS[KEY]
    with pytest.raises(MalformedProof):
        verify_mpt_proof(ROOT, KEY, PROOF, check="t", max_value_size=size - 1)


def test_only_the_last_node_may_exceed_max_node_size() -> None:
    """Node sizes: the leaf may carry a large value; the node before it may not be large."""
    items = {b"\x01": b"x" * 1000, b"\x02": b"y" * 1000}
    root = compute_mpt_root(items)
    proof = compute_mpt_proof(items, b"\x01")
    assert [len(node) > 100 for node in proof] == [False, False, True]
    assert verify_mpt_proof(root, b"\x01", proof, check="t", max_node_size=100) == items[b"\x01"]
    with pytest.raises(MalformedProof) as info:
        verify_mpt_proof(root, b"\x01", proof, check="t", max_node_size=len(proof[1]) - 1)
    assert info.value.index == 1


def test_parse_proof_nodes_needs_a_list_and_takes_uppercase_prefix() -> None:
    """A non-list is a MalformedEvidence on field "proof", not a list of characters; 0X works."""
    for bad in ("0xc0", b"\xc0", {"0xc0": 1}):
        with pytest.raises(MalformedEvidence) as info:
            parse_proof_nodes(bad, check="t")
        assert not isinstance(info.value, MalformedProof)
        assert info.value.field == "proof"
    assert parse_proof_nodes(["0XC0", "0x80"], check="t") == [b"\xc0", b"\x80"]
    with pytest.raises(MalformedProof) as proof_info:
        parse_proof_nodes(["0xc0", "0Xzz"], check="receipt_proof")
    assert (proof_info.value.check, proof_info.value.index) == ("receipt_proof", 1)


@pytest.mark.parametrize(
    ("node", "key"),
    [
        (encode([[b"\x20"], b"v"]), b""),  # path that is a list (its payload reads as a leaf)
        (encode([b"\x21\x23", b"v"]), b"\x23"),  # even leaf path, non-zero pad nibble
    ],
)
def test_malformed_paths(node: bytes, key: bytes) -> None:
    """A hex-prefix path must be a string whose even form pads with a zero nibble."""
    with pytest.raises(MalformedProof, match="bad hex-prefix path"):
        verify_mpt_proof(keccak256(node), key, [node], check="t")


def test_errors_in_later_nodes_name_node_and_check() -> None:
    """A malformed node after the root is reported with its index and the caller's check."""
    for node in (b"\xc3\x81\x05\x80", b"\x83abc"):  # non-canonical item; not a list
        branch = encode_list_of_encoded([b"\x80", b"\xa0" + keccak256(node)] + [b"\x80"] * 15)
        with pytest.raises(MalformedProof) as info:
            verify_mpt_proof(keccak256(branch), b"\x10", [branch, node], check="receipt_proof")
        assert (info.value.index, info.value.check) == (1, "receipt_proof")


def test_non_bytes_key_and_nodes_are_malformed() -> None:
    """A str key or a str node is refused as malformed input, naming the field or the node."""
    with pytest.raises(MalformedEvidence) as info:
        verify_mpt_proof(ROOT, KEY.hex(), PROOF, check="receipt_proof")  # type: ignore[arg-type]
    assert (info.value.field, info.value.check) == ("key", "receipt_proof")
    with pytest.raises(MalformedEvidence) as info:
        verify_mpt_proof(ROOT[:31], KEY, PROOF, check="receipt_proof")
    assert (info.value.field, info.value.check) == ("root", "receipt_proof")
    nodes: list[Any] = [PROOF[0], PROOF[1].hex(), *PROOF[2:]]
    with pytest.raises(MalformedProof) as proof_info:
        verify_mpt_proof(ROOT, KEY, nodes, check="receipt_proof")
    assert (proof_info.value.index, proof_info.value.check) == (1, "receipt_proof")
    with pytest.raises(MalformedProof) as proof_info:
        verify_mpt_proof(ROOT, KEY, [], check="receipt_proof")
    assert proof_info.value.check == "receipt_proof"
