"""EVM block hashes recompute for real mainnet and Goerli headers of every fork; tampering fails."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import VectorLoader, load_shared_vector
from verifier.errors import MalformedEvidence, ProofMismatch, VerificationError
from verifier.evm.header import (
    BASE_FIELDS,
    OPTIONAL_FIELDS,
    compute_block_hash,
    encode_header,
    parse_header,
    verify_block_hash,
)
from verifier.hashing import keccak256

BLOCK_FILES = [
    "evm/goerli_1_clique_header.json",
    "evm/mainnet_1150000_homestead_receipts.json",
    "evm/mainnet_14194126_london_receipts.json",
    "evm/mainnet_19432087_cancun_blob_receipts.json",
    "evm/mainnet_19432673_cancun_small_block.json",
    "evm/mainnet_21925176_cancun_receipts_helios.json",
    "evm/mainnet_26050794_prague_header.json",
]
PRAGUE = "evm/mainnet_26050794_prague_header.json"
HASHED = [name for name, _ in BASE_FIELDS + OPTIONAL_FIELDS]


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


@pytest.mark.vectors
def test_headers_by_fork_recompute(shared_vector: VectorLoader) -> None:
    """All 11 headers (Frontier to Cancun): our RLP is the recorded one and hashes to `hash`."""
    headers = shared_vector("evm/mainnet_headers_by_fork.json")["headers"]
    counts = set()
    for header in headers:
        assert encode_header(header) == _b(header["_rlp"]), header["number"]
        assert compute_block_hash(header) == _b(header["hash"]) == keccak256(_b(header["_rlp"]))
        counts.add(parse_header(header).field_count)
    assert len(headers) == 11
    assert counts == {15, 16, 17, 20}


@pytest.mark.vectors
@pytest.mark.parametrize("rel", BLOCK_FILES)
def test_block_file_headers_recompute(shared_vector: VectorLoader, rel: str) -> None:
    """The header of every block file hashes to its recorded `hash`."""
    header = shared_vector(rel)["header"]
    parsed = verify_block_hash(header, _b(header["hash"]))
    assert parsed.hash == _b(header["hash"])
    assert parsed.number == int(header["number"], 16)
    assert parsed.receipts_root == _b(header["receiptsRoot"])
    assert parsed.transactions_root == _b(header["transactionsRoot"])


@pytest.mark.vectors
def test_prague_header_has_21_fields(shared_vector: VectorLoader) -> None:
    """The Prague header encodes all 21 fields to the recorded RLP; requestsHash is sha256("")."""
    v = shared_vector(PRAGUE)
    header = parse_header(v["header"])
    assert header.field_count == 21
    assert encode_header(v["header"]) == _b(v["header_rlp"])
    assert header.requests_hash == _b(
        "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.vectors
def test_dropping_requests_hash_changes_the_hash(shared_vector: VectorLoader) -> None:
    """Without requestsHash the Prague header is a valid 20-field header with another hash."""
    block = copy.deepcopy(shared_vector(PRAGUE)["header"])
    full = compute_block_hash(block)
    del block["requestsHash"]
    assert parse_header(block).field_count == 20
    assert compute_block_hash(block) != full
    with pytest.raises(ProofMismatch) as info:
        verify_block_hash(block, full)
    assert info.value.check == "block_hash"


@pytest.mark.vectors
def test_gap_in_the_optional_tail_is_rejected(shared_vector: VectorLoader) -> None:
    """A later optional field present after an absent one is MalformedEvidence."""
    block = copy.deepcopy(shared_vector(PRAGUE)["header"])
    block["withdrawalsRoot"] = None
    with pytest.raises(MalformedEvidence) as info:
        compute_block_hash(block)
    assert info.value.check == "header_fields"
    assert info.value.field == "block.blobGasUsed"


@pytest.mark.vectors
def test_null_and_missing_mean_absent(shared_vector: VectorLoader) -> None:
    """`"baseFeePerGas": null` (pre-London RPC output) hashes like a missing key."""
    block = copy.deepcopy(shared_vector("evm/mainnet_1150000_homestead_receipts.json")["header"])
    assert block["baseFeePerGas"] is None
    with_null = compute_block_hash(block)
    del block["baseFeePerGas"]
    assert compute_block_hash(block) == with_null == _b(block["hash"])


@pytest.mark.vectors
def test_unhashed_fields_are_ignored(shared_vector: VectorLoader) -> None:
    """hash, size, totalDifficulty, transactions and withdrawals do not enter the hash."""
    block = copy.deepcopy(shared_vector("evm/mainnet_19432673_cancun_small_block.json")["header"])
    expected = compute_block_hash(block)
    block.update(hash="0x" + "00" * 32, size="0x1", totalDifficulty="0x0", transactions=[])
    block["withdrawals"] = []
    assert compute_block_hash(block) == expected


def _tamper(value: str, position: int, digit: int) -> str:
    """Replace one hex digit of `value` by a different one; empty data gains a byte."""
    body = value[2:]
    if not body:
        return "0x0" + format(digit % 15 + 1, "x")
    i = position % len(body)
    new = format(digit, "x")
    if new == body[i].lower():
        new = format((digit + 1) % 16, "x")
    return "0x" + body[:i] + new + body[i + 1 :]


@pytest.mark.vectors
@settings(max_examples=120, deadline=None)
@given(
    rel=st.sampled_from(BLOCK_FILES),
    field=st.sampled_from(HASHED),
    position=st.integers(0, 600),
    digit=st.integers(0, 15),
)
def test_any_hashed_field_tampered_is_rejected(
    rel: str, field: str, position: int, digit: int
) -> None:
    """Changing one hex digit of any hashed field raises a typed error against the real hash."""
    block: dict[str, Any] = copy.deepcopy(load_shared_vector(rel)["header"])
    if block.get(field) is None:
        return
    block[field] = _tamper(block[field], position, digit)
    with pytest.raises(VerificationError):
        verify_block_hash(block, _b(block["hash"]))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stateRoot": None}, "block.stateRoot"),
        ({"miner": "0x1234"}, "block.miner"),
        ({"logsBloom": "0x00"}, "block.logsBloom"),
        ({"number": "0x01"}, "block.number"),
        ({"number": 5}, "block.number"),
        ({"gasLimit": "0x1" + "0" * 16}, "block.gasLimit"),
        ({"extraData": "0xabc"}, "block.extraData"),
        ({"nonce": "0x00"}, "block.nonce"),
    ],
)
def test_malformed_fields(change: dict[str, Any], field: str) -> None:
    """Missing, mis-sized, non-canonical or overlong fields: MalformedEvidence naming the path."""
    block = _synthetic_block()
    block.update(change)
    if change.get("stateRoot", "") is None:
        del block["stateRoot"]
    with pytest.raises(MalformedEvidence) as info:
        compute_block_hash(block)
    assert info.value.field == field


def test_not_an_object() -> None:
    """A block that is not a JSON object is malformed."""
    with pytest.raises(MalformedEvidence):
        compute_block_hash([])  # type: ignore[arg-type]


def test_extra_optional_fields_are_data_driven() -> None:
    """A chain with a longer tail passes its own field list (e.g. a post-Prague field)."""
    block = _synthetic_block()
    block.update(
        withdrawalsRoot="0x" + "88" * 32,
        blobGasUsed="0x0",
        excessBlobGas="0x0",
        parentBeaconBlockRoot="0x" + "99" * 32,
        requestsHash="0x" + "aa" * 32,
        blockAccessListHash="0x" + "bb" * 32,
    )
    tail = (*OPTIONAL_FIELDS, ("blockAccessListHash", 32))
    assert compute_block_hash(block) != compute_block_hash(block, optional_fields=tail)
    assert parse_header(block).field_count == 21
    assert parse_header(block, optional_fields=tail).field_count == 22


def _synthetic_block() -> dict[str, Any]:
    """A London-shaped header (16 fields) with plain values."""
    return {
        "parentHash": "0x" + "11" * 32,
        "sha3Uncles": "0x" + "22" * 32,
        "miner": "0x" + "33" * 20,
        "stateRoot": "0x" + "44" * 32,
        "transactionsRoot": "0x" + "55" * 32,
        "receiptsRoot": "0x" + "66" * 32,
        "logsBloom": "0x" + "00" * 256,
        "difficulty": "0x0",
        "number": "0x10",
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x0",
        "timestamp": "0x6700a1b2",
        "extraData": "0x",
        "mixHash": "0x" + "77" * 32,
        "nonce": "0x" + "00" * 8,
        "baseFeePerGas": "0x7",
    }
