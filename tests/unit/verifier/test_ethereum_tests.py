"""The Ethereum Foundation's RLP and trie vectors (ethereum/tests) against verifier/.

Read at run time from ``../shared/vectors/peer/ethereum-tests/`` (see its README), skipped when
the folder is absent. RLP: every valid vector encodes to its bytes and decodes back, every
invalid one is refused with :class:`~verifier.rlp.RlpError`, by the decoder and by the list
scanner the proof walker uses. Tries: the builder's root equals the vector's root, every key
proves its value with the builder's proof, and keys that are absent (deleted by the vector, or
near a present key) are shown absent by the proof of the nearest present key.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import load_shared_vector
from verifier.errors import ProofMismatch
from verifier.hashing import keccak256
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root, verify_mpt_proof
from verifier.rlp import (
    Decoded,
    RlpError,
    decode,
    encode,
    encode_list_of_encoded,
    encode_uint,
    list_items,
    list_payload,
)

pytestmark = pytest.mark.vectors

FOLDER = "peer/ethereum-tests/"
TRIE_FILES = [
    ("trietest.json", False),
    ("trieanyorder.json", False),
    ("trietest_secureTrie.json", True),
    ("trieanyorder_secureTrie.json", True),
    ("hex_encoded_securetrie_test.json", True),
]
# The vectors' tries hold values in branches (key "do" under "dog"), so branches are larger
# than in receipt tries: the inner-node bound is raised accordingly.
NODE_BOUND = 1 << 16


def _vectors(name: str) -> dict[str, Any]:
    data: dict[str, Any] = load_shared_vector(FOLDER + name)
    return data


def _names(name: str) -> list[str]:
    """Case names for parametrize; empty (one skipped case) when the folder is absent."""
    try:
        return list(_vectors(name))
    except pytest.skip.Exception:
        return ["<vectors absent>"]


def _case(name: str, case: str) -> dict[str, Any]:
    vectors = _vectors(name)
    if case not in vectors:
        pytest.skip(f"{FOLDER}{name} has no case {case!r}")
    result: dict[str, Any] = vectors[case]
    return result


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


# --- RLP ------------------------------------------------------------------------------------


def _rlp_item(value: Any) -> Any:
    """A vector's ``in``: strings are bytes, integers (``#`` for big ones) are minimal bytes."""
    if isinstance(value, list):
        return [_rlp_item(v) for v in value]
    if isinstance(value, int):
        return encode_uint(value)
    if value.startswith("#"):
        return encode_uint(int(value[1:]))
    return value.encode("utf-8")


@pytest.mark.parametrize("case", _names("rlptest.json"))
def test_valid_rlp_round_trips(case: str) -> None:
    """encode(in) is the vector's bytes; decoding them gives ``in`` back."""
    vector = _case("rlptest.json", case)
    item, out = _rlp_item(vector["in"]), _hex(vector["out"])
    assert encode(item) == out
    decoded: Decoded = decode(out)
    assert decoded == item
    if isinstance(item, list):
        _scan(out)


def _scan(data: bytes) -> None:
    """Walk a list with the proof walker's scanner, nested lists included."""
    start, end = list_payload(data)
    stack = [(start, end)]
    while stack:
        s, e = stack.pop()
        stack.extend((cs, ce) for cs, ce, is_list in list_items(data, s, e) if is_list)


@pytest.mark.parametrize("case", _names("invalidRLPTest.json"))
def test_invalid_rlp_is_rejected(case: str) -> None:
    """Every invalid encoding raises RlpError: alone, and as the item of a list when scanned."""
    raw = _hex(_case("invalidRLPTest.json", case)["out"])
    with pytest.raises(RlpError):
        decode(raw)
    if raw[:1] >= b"\xc0":
        with pytest.raises(RlpError):
            _scan(raw)
    if raw:  # inside a list, the bad item must not pass the scanner either
        with pytest.raises(RlpError):
            _scan(encode_list_of_encoded([raw]))


# --- tries ----------------------------------------------------------------------------------


def _trie_bytes(text: str | None, *, hex_only: bool) -> bytes | None:
    if text is None:
        return None
    if hex_only or text.startswith("0x"):
        return _hex(text)
    return text.encode("utf-8")


def _final_items(vector: dict[str, Any], *, secure: bool, hex_only: bool) -> dict[bytes, bytes]:
    """Apply the vector's inserts in order (a null or empty value deletes the key)."""
    pairs = vector["in"].items() if isinstance(vector["in"], dict) else vector["in"]
    items: dict[bytes, bytes] = {}
    for key_text, value_text in pairs:
        key = _trie_bytes(key_text, hex_only=hex_only)
        assert key is not None
        if secure:
            key = keccak256(key)
        value = _trie_bytes(value_text, hex_only=hex_only)
        if value:
            items[key] = value
        else:
            items.pop(key, None)
    return items


def _deleted_keys(vector: dict[str, Any], *, secure: bool, hex_only: bool) -> set[bytes]:
    keys = set()
    pairs = vector["in"].items() if isinstance(vector["in"], dict) else vector["in"]
    for key_text, _ in pairs:
        key = _trie_bytes(key_text, hex_only=hex_only)
        assert key is not None
        keys.add(keccak256(key) if secure else key)
    return keys


def _trie_cases() -> list[Any]:
    cases = []
    for name, secure in TRIE_FILES:
        cases += [pytest.param(name, secure, case, id=f"{name}:{case}") for case in _names(name)]
    return cases


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _nearest(items: dict[bytes, bytes], key: bytes) -> bytes:
    """The present key sharing the most leading nibbles with ``key``."""
    return max(items, key=lambda k: _common_prefix(k.hex(), key.hex()))


def _absent_candidates(items: dict[bytes, bytes], deleted: set[bytes]) -> set[bytes]:
    """Keys known to be absent: deleted ones, and near misses of every present key."""
    near = set(deleted)
    for key in items:
        near |= {key + b"\x00", key[:-1], bytes([key[0] ^ 0x01]) + key[1:] if key else b"\x01"}
        near.add(key[:-1] + bytes([key[-1] ^ 0x10]) if key else b"\x10")
    return near - set(items)


@pytest.mark.parametrize(("name", "secure", "case"), _trie_cases())
def test_trie_root_proofs_and_absence(name: str, secure: bool, case: str) -> None:
    """Root equals the vector's; every key proves its value; absent keys prove absence."""
    vector = _case(name, case)
    hex_only = name.startswith("hex_encoded")
    items = _final_items(vector, secure=secure, hex_only=hex_only)
    root = compute_mpt_root(items)
    assert "0x" + root.hex() == vector["root"]
    for key, value in items.items():
        proof = compute_mpt_proof(items, key)
        assert verify_mpt_proof(root, key, proof, check="t", max_node_size=NODE_BOUND) == value
    if not items:
        return
    deleted = _deleted_keys(vector, secure=secure, hex_only=hex_only)
    for key in sorted(_absent_candidates(items, deleted)):
        proof = compute_mpt_proof(items, _nearest(items, key))
        with pytest.raises(ProofMismatch) as info:
            verify_mpt_proof(root, key, proof, check="t", max_node_size=NODE_BOUND)
        assert info.value.computed.startswith("absence ("), (key.hex(), info.value.computed)
