"""FISCO BCOS 3.x header hash (incl. the genesis quirk), parsing and strict JSON encodings."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import VectorLoader, load_shared_vector
from tests.unit.verifier.fisco._synthetic import build_header, private_keys
from verifier.errors import MalformedEvidence, ProofMismatch, VerificationError
from verifier.fisco.header import FiscoHeader, compute_header_hash, parse_header
from verifier.hashing import CryptoSuite, keccak256, sm3

WECROSS = "fisco/wecross_bcos3_vectors.json"
DOC = "fisco/fisco_doc_examples.json"


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _synthetic() -> dict[str, Any]:
    suite = CryptoSuite.KECCAK256_SECP256K1
    return build_header(suite, private_keys(suite), [0, 1, 2])


@pytest.mark.vectors
@pytest.mark.parametrize(
    ("file", "path", "hasher", "expected"),
    [
        (WECROSS, ("block",), keccak256, "f8bcb3fee47b4edc"),
        (WECROSS, ("block0",), keccak256, "b51bf83bca8062a2"),
        (DOC, ("sm_chain", "block2_header"), sm3, "2fbafbf71395bb07"),
        (DOC, ("sm_chain", "genesis_block"), sm3, "47c6d9493171f62b"),
    ],
    ids=["wecross-60", "wecross-72", "doc-sm-2", "doc-sm-genesis"],
)
def test_real_header_hashes(
    shared_vector: VectorLoader, file: str, path: tuple[str, ...], hasher: Any, expected: str
) -> None:
    """Recomputed header hashes equal the node's, genesis with empty roots and gasUsed."""
    block = shared_vector(file)
    for key in path:
        block = block[key]
    digest = compute_header_hash(block, hasher)
    assert digest == _b(block["hash"])
    assert digest.hex().startswith(expected)
    assert parse_header(block, hasher).hash == digest


@pytest.mark.vectors
def test_parsed_fields(shared_vector: VectorLoader) -> None:
    """parse_header exposes typed fields: roots, 64-byte keys, weights, signatures."""
    block = shared_vector(WECROSS)["block0"]
    header = parse_header(block, keccak256)
    assert isinstance(header, FiscoHeader)
    assert header.number == 72
    assert header.version == 0x03020000
    assert header.txs_root == _b(block["txsRoot"])
    assert header.receipts_root == _b(block["receiptsRoot"])
    assert [len(k) for k in header.sealer_list] == [64] * 4
    assert header.consensus_weights == (1, 1, 1, 1)
    assert [i for i, _ in header.signatures] == [0, 1, 3]
    assert all(len(sig) == 65 for _, sig in header.signatures)
    assert header.parent_info == ((71, _b(block["parentInfo"][0]["blockHash"])),)


@pytest.mark.vectors
def test_genesis_prints_must_be_the_defaults(shared_vector: VectorLoader) -> None:
    """Genesis roots and gasUsed are not hashed, so anything but the printed zeros is refused."""
    genesis = shared_vector(DOC)["sm_chain"]["genesis_block"]
    for field, value in (("txsRoot", "0x" + "01" * 32), ("stateRoot", "0x" + "00" * 31 + "01")):
        tampered = copy.deepcopy(genesis)
        tampered[field] = value
        with pytest.raises(MalformedEvidence, match=field):
            compute_header_hash(tampered, sm3)
    tampered = copy.deepcopy(genesis)
    tampered["gasUsed"] = "1"
    with pytest.raises(MalformedEvidence, match="gasUsed"):
        compute_header_hash(tampered, sm3)


def test_hash_field_must_match() -> None:
    """A JSON hash that differs from the recomputed one is a header_hash ProofMismatch."""
    block = _synthetic()
    good = block["hash"]
    block["hash"] = "0x" + "00" * 32
    with pytest.raises(ProofMismatch) as info:
        parse_header(block, keccak256)
    assert info.value.check == "header_hash"
    assert info.value.computed == good
    del block["hash"]
    assert parse_header(block, keccak256).hash == _b(good)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("number", "5"),
        ("number", -1),
        ("number", True),
        ("number", 5.0),
        ("version", 2**31),
        ("gasUsed", 21000),
        ("gasUsed", "0x5208"),
        ("gasUsed", "021000"),
        ("timestamp", "1700000000005"),
        ("sealer", None),
        ("txsRoot", "22" * 32),
        ("txsRoot", "0x" + "22" * 31),
        ("sealerList", ["ab" * 64]),
        ("sealerList", ["0x" + "ab" * 65]),
        ("sealerList", "0x" + "ab" * 64),
        ("consensusWeights", ["1"]),
        ("parentInfo", [{"blockNumber": 4}]),
        ("parentInfo", [{"blockNumber": 4, "blockHash": "0x11"}]),
        ("extraData", "0xabc"),
        ("signatureList", [{"sealerIndex": "0", "signature": "0x00"}]),
        ("signatureList", [{"sealerIndex": 0, "signature": "0x"}]),
        ("signatureList", {"sealerIndex": 0}),
    ],
)
def test_strict_encodings(field: str, value: Any) -> None:
    """Wrongly typed or encoded fields are MalformedEvidence naming the field."""
    block = _synthetic()
    block[field] = value
    with pytest.raises(MalformedEvidence) as info:
        parse_header(block, keccak256)
    assert field in str(info.value)


@pytest.mark.parametrize("field", ["number", "txsRoot", "sealerList", "signatureList", "gasUsed"])
def test_missing_fields(field: str) -> None:
    """A missing field is MalformedEvidence with its path, not a KeyError."""
    block = _synthetic()
    del block[field]
    with pytest.raises(MalformedEvidence, match=f"block.{field}"):
        parse_header(block, keccak256)


def test_not_an_object() -> None:
    """A list instead of a header object is MalformedEvidence."""
    with pytest.raises(MalformedEvidence):
        parse_header([], keccak256)  # type: ignore[arg-type]


_HEX_FIELDS = ["txsRoot", "receiptsRoot", "stateRoot", "extraData"]
_INT_FIELDS = ["version", "number", "timestamp", "sealer"]


def _mutate_header(block: dict[str, Any], choice: int, byte: int, xor: int) -> None:
    """One single change to a hashed field, chosen by ``choice``."""
    kind = choice % 6
    if kind == 0:
        field = _HEX_FIELDS[choice // 6 % len(_HEX_FIELDS)]
        raw = bytearray(_b(block[field]) or b"\x00")
        raw[byte % len(raw)] ^= xor
        block[field] = "0x" + raw.hex()
    elif kind == 1:
        field = _INT_FIELDS[choice // 6 % len(_INT_FIELDS)]
        block[field] += 1 + byte
    elif kind == 2:
        key = bytearray(_b(block["sealerList"][choice // 6 % 4]))
        key[byte % 64] ^= xor
        block["sealerList"][choice // 6 % 4] = "0x" + key.hex()
    elif kind == 3:
        block["consensusWeights"][choice // 6 % 4] += 1 + byte
    elif kind == 4:
        block["gasUsed"] = str(int(block["gasUsed"]) + 1 + byte)
    else:
        parent = block["parentInfo"][0]
        if byte % 2:
            parent["blockNumber"] += 1
        else:
            raw = bytearray(_b(parent["blockHash"]))
            raw[byte % 32] ^= xor
            parent["blockHash"] = "0x" + raw.hex()


@settings(max_examples=120, deadline=None)
@given(choice=st.integers(0, 10_000), byte=st.integers(0, 255), xor=st.integers(1, 255))
def test_any_header_field_change_is_rejected(choice: int, byte: int, xor: int) -> None:
    """Any single change to a hashed header field breaks the hash check."""
    block = _synthetic()
    _mutate_header(block, choice, byte, xor)
    with pytest.raises(VerificationError):
        parse_header(block, keccak256)


@pytest.mark.vectors
@settings(max_examples=60, deadline=None)
@given(choice=st.integers(0, 10_000), byte=st.integers(0, 255), xor=st.integers(1, 255))
def test_any_real_header_field_change_is_rejected(choice: int, byte: int, xor: int) -> None:
    """Any single change to a hashed field of WeCross block 60 breaks the hash check."""
    block = copy.deepcopy(load_shared_vector(WECROSS)["block"])
    _mutate_header(block, choice, byte, xor)
    with pytest.raises(VerificationError):
        parse_header(block, keccak256)
