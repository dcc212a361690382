"""EVM receipts: consensus encoding, receiptsRoot and real proofs verify; tampering is caught."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import VectorLoader, load_shared_vector
from verifier.errors import MalformedEvidence, MalformedProof, ProofMismatch, VerificationError
from verifier.evm.receipt import (
    EvmLog,
    decode_receipt,
    encode_receipt,
    receipt_key,
    verify_receipt_proof,
)
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root
from verifier.rlp import encode

RECEIPT_FILES = [
    "evm/mainnet_1150000_homestead_receipts.json",
    "evm/mainnet_14194126_london_receipts.json",
    "evm/mainnet_19432087_cancun_blob_receipts.json",
    "evm/mainnet_19432673_cancun_small_block.json",
    "evm/mainnet_21925176_cancun_receipts_helios.json",
]
BLOB = "evm/mainnet_19432087_cancun_blob_receipts.json"
SMALL = "evm/mainnet_19432673_cancun_small_block.json"
HOMESTEAD = "evm/mainnet_1150000_homestead_receipts.json"


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _case(rel: str, pos: int) -> tuple[bytes, dict[str, Any], list[str]]:
    """(receiptsRoot, a deep copy of the receipt, its proof) for receipt_proofs[pos] of a file."""
    v = load_shared_vector(rel)
    entry = v["receipt_proofs"][pos % len(v["receipt_proofs"])]
    receipt = v["receipts"][int(entry["transactionIndex"], 16)]
    return _b(v["header"]["receiptsRoot"]), copy.deepcopy(receipt), list(entry["proof"])


@pytest.mark.parametrize(("index", "key"), [(0, "80"), (1, "01"), (127, "7f"), (128, "8180")])
def test_receipt_key_is_rlp_of_the_index(index: int, key: str) -> None:
    """rlp(0) is 0x80, 1..127 a single byte, 128 two bytes."""
    assert receipt_key(index).hex() == key


@pytest.mark.parametrize("index", [-1, True, "0x1", 1 << 64])
def test_receipt_key_rejects_bad_indices(index: Any) -> None:
    """Negative, boolean, string or overlong indices are malformed."""
    with pytest.raises(MalformedEvidence):
        receipt_key(index)


@pytest.mark.vectors
@pytest.mark.parametrize("rel", RECEIPT_FILES)
def test_encoding_and_receipts_root(shared_vector: VectorLoader, rel: str) -> None:
    """Every receipt re-encodes to its consensus RLP and all of them rebuild receiptsRoot."""
    v = shared_vector(rel)
    encoded = [encode_receipt(r) for r in v["receipts"]]
    assert encoded == [_b(x) for x in v["receipts_consensus_rlp"]]
    items = {
        receipt_key(int(r["transactionIndex"], 16)): e
        for r, e in zip(v["receipts"], encoded, strict=True)
    }
    assert compute_mpt_root(items) == _b(v["header"]["receiptsRoot"])


@pytest.mark.vectors
@pytest.mark.parametrize("rel", RECEIPT_FILES)
def test_every_vector_proof_verifies(shared_vector: VectorLoader, rel: str) -> None:
    """Each receipt_proofs[] entry verifies; the result is decoded from the proven bytes."""
    v = shared_vector(rel)
    root = _b(v["header"]["receiptsRoot"])
    for entry in v["receipt_proofs"]:
        receipt = v["receipts"][int(entry["transactionIndex"], 16)]
        proven = verify_receipt_proof(root, receipt, entry["proof"])
        assert proven.encoded == _b(entry["value"])
        assert proven.tx_type == int(entry["type"], 16)
        assert proven.cumulative_gas_used == int(receipt["cumulativeGasUsed"], 16)
        assert proven.logs_bloom == _b(receipt["logsBloom"])
        assert len(proven.logs) == len(receipt["logs"])
        for log, raw in zip(proven.logs, receipt["logs"], strict=True):
            assert log == EvmLog(_b(raw["address"]), tuple(map(_b, raw["topics"])), _b(raw["data"]))


@pytest.mark.vectors
def test_key_length_boundary_indices_are_covered(shared_vector: VectorLoader) -> None:
    """The blob block's proofs include indices 0, 127, 128 and 129, and types 0x1 and 0x3."""
    entries = shared_vector(BLOB)["receipt_proofs"]
    assert {0, 127, 128, 129} <= {int(e["transactionIndex"], 16) for e in entries}
    assert {"0x0", "0x1", "0x2", "0x3"} <= {e["type"] for e in entries}


@pytest.mark.vectors
def test_pre_byzantium_receipts_carry_the_state_root(shared_vector: VectorLoader) -> None:
    """Homestead receipts commit a 32-byte post-state root, no status (the JSON status is junk)."""
    v = shared_vector(HOMESTEAD)
    root = _b(v["header"]["receiptsRoot"])
    for entry in v["receipt_proofs"]:
        receipt = v["receipts"][int(entry["transactionIndex"], 16)]
        proven = verify_receipt_proof(root, receipt, entry["proof"])
        assert proven.status is None
        assert proven.post_state == _b(receipt["root"])


@pytest.mark.vectors
def test_failed_receipts_encode_status_as_empty_string(shared_vector: VectorLoader) -> None:
    """Status 0 is the empty string (0x80); claiming success instead changes the root."""
    v = shared_vector(BLOB)
    receipts = copy.deepcopy(v["receipts"])
    failed = next(i for i, r in enumerate(receipts) if r["status"] == "0x0")
    assert decode_receipt(encode_receipt(receipts[failed])).status == 0
    receipts[failed]["status"] = "0x1"
    items = {receipt_key(i): encode_receipt(r) for i, r in enumerate(receipts)}
    assert compute_mpt_root(items) != _b(v["header"]["receiptsRoot"])


@pytest.mark.vectors
def test_derived_fields_are_not_committed(shared_vector: VectorLoader) -> None:
    """gasUsed, from, to, effectiveGasPrice and contractAddress may say anything: not trusted."""
    root, receipt, proof = _case(SMALL, 3)
    receipt.update(
        gasUsed="0x1",
        effectiveGasPrice="0x2",
        contractAddress="0x" + "00" * 20,
        blockHash="0x" + "00" * 32,
    )
    receipt["from"] = receipt["to"] = "0x" + "11" * 20
    assert verify_receipt_proof(root, receipt, proof).tx_type == int(receipt["type"], 16)


_COMMITTED = ["status", "cumulativeGasUsed", "type", "bloom", "address", "topic", "data"]


def _tamper_receipt(receipt: dict[str, Any], what: str, n: int) -> None:
    """Change one committed field of `receipt` in place; `n` picks which byte or value."""
    logs = receipt["logs"]
    if what == "status":
        receipt["status"] = "0x0" if receipt["status"] == "0x1" else "0x1"
    elif what == "cumulativeGasUsed":
        receipt["cumulativeGasUsed"] = hex(int(receipt["cumulativeGasUsed"], 16) + 1 + n)
    elif what == "type":
        receipt["type"] = [t for t in ("0x0", "0x1", "0x2", "0x3", "0x4") if t != receipt["type"]][
            n % 4
        ]
    elif what == "bloom":
        receipt["logsBloom"] = _flip_hex(receipt["logsBloom"], n)
    elif what == "address":
        logs[n % len(logs)]["address"] = _flip_hex(logs[n % len(logs)]["address"], n)
    elif what == "topic":
        topics = next(x["topics"] for x in logs[n % len(logs) :] + logs if x["topics"])
        topics[n % len(topics)] = _flip_hex(topics[n % len(topics)], n)
    else:
        log = logs[n % len(logs)]
        log["data"] = _flip_hex(log["data"], n) if log["data"] != "0x" else "0x00"


def _flip_hex(value: str, n: int) -> str:
    raw = bytearray(_b(value))
    raw[n % len(raw)] ^= 1 + n % 255
    return "0x" + raw.hex()


@pytest.mark.vectors
@settings(max_examples=120, deadline=None)
@given(pos=st.integers(0, 20), what=st.sampled_from(_COMMITTED), n=st.integers(0, 10_000))
def test_any_committed_field_tampered_is_rejected(pos: int, what: str, n: int) -> None:
    """Changing status, gas, type, bloom or a log's address, topic or data fails the proof."""
    root, receipt, proof = _case(SMALL, pos)
    if what in ("address", "data") and not receipt["logs"]:
        return
    if what == "topic" and not any(log["topics"] for log in receipt["logs"]):
        return
    _tamper_receipt(receipt, what, n)
    with pytest.raises(VerificationError) as info:
        verify_receipt_proof(root, receipt, proof)
    assert info.value.check in ("receipt_proof", "receipt_encoding")


@pytest.mark.vectors
@settings(max_examples=150, deadline=None)
@given(
    rel=st.sampled_from(RECEIPT_FILES),
    pos=st.integers(0, 20),
    node=st.integers(0, 10),
    byte=st.integers(0, 100_000),
    xor=st.integers(1, 255),
)
def test_any_proof_byte_flip_is_rejected(
    rel: str, pos: int, node: int, byte: int, xor: int
) -> None:
    """Flipping any byte of any node of a real proof raises ProofMismatch at that node."""
    root, receipt, proof = _case(rel, pos)
    node %= len(proof)
    raw = bytearray(_b(proof[node]))
    raw[byte % len(raw)] ^= xor
    proof[node] = "0x" + raw.hex()
    with pytest.raises(ProofMismatch) as info:
        verify_receipt_proof(root, receipt, proof)
    assert (info.value.check, info.value.index) == ("receipt_proof", node)


@pytest.mark.vectors
def test_wrong_index(shared_vector: VectorLoader) -> None:
    """A receipt claiming another transactionIndex does not verify with the real proof."""
    for pos in range(len(shared_vector(BLOB)["receipt_proofs"])):
        root, receipt, proof = _case(BLOB, pos)
        receipt["transactionIndex"] = hex(int(receipt["transactionIndex"], 16) + 1)
        with pytest.raises(VerificationError):
            verify_receipt_proof(root, receipt, proof)


@pytest.mark.vectors
def test_another_receipt_with_this_proof(shared_vector: VectorLoader) -> None:
    """The receipt at index 1 presented with index 0's proof: its key and value both differ."""
    v = shared_vector(SMALL)
    root = _b(v["header"]["receiptsRoot"])
    with pytest.raises(VerificationError):
        verify_receipt_proof(root, v["receipts"][1], v["receipt_proofs"][0]["proof"])


@pytest.mark.vectors
def test_truncated_empty_wrong_root_and_trailing(shared_vector: VectorLoader) -> None:
    """Truncated, empty, extended proofs and a wrong root are rejected with typed errors."""
    root, receipt, proof = _case(BLOB, 6)
    assert verify_receipt_proof(root, receipt, proof).status in (0, 1)
    with pytest.raises(MalformedProof) as truncated:
        verify_receipt_proof(root, receipt, proof[:-1])
    assert truncated.value.index == len(proof) - 1
    with pytest.raises(MalformedProof):
        verify_receipt_proof(root, receipt, [])
    with pytest.raises(MalformedProof) as trailing:
        verify_receipt_proof(root, receipt, [*proof, proof[0]])
    # this leaf (1126 bytes) is too large for a node that is not the last one
    assert trailing.value.index in (len(proof) - 1, len(proof))
    other_root = _b(load_shared_vector(SMALL)["header"]["receiptsRoot"])
    with pytest.raises(ProofMismatch) as wrong:
        verify_receipt_proof(other_root, receipt, proof)
    assert wrong.value.index == 0
    with pytest.raises(MalformedProof):
        verify_receipt_proof(root, receipt, ["0xnothex", *proof[1:]])


def test_synthetic_type_4_receipt_and_proof() -> None:
    """An EIP-7702 receipt gets the 0x04 prefix and proves like the others."""
    receipts = [_synthetic_receipt(i, t) for i, t in enumerate(["0x0", "0x2", "0x4", "0x3"])]
    items = {receipt_key(i): encode_receipt(r) for i, r in enumerate(receipts)}
    root = compute_mpt_root(items)
    proof = ["0x" + n.hex() for n in compute_mpt_proof(items, receipt_key(2))]
    proven = verify_receipt_proof(root, receipts[2], proof)
    assert proven.encoded[0] == 4
    assert (proven.tx_type, proven.status) == (4, 1)
    assert proven.logs[0].topics == (b"\x01" * 32, b"\x02" * 32)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "0x7e"}, "receipt.type"),
        ({"type": "0x5"}, "receipt.type"),
        ({"status": "0x2"}, "receipt.status"),
        ({"root": "0x" + "00" * 32}, "receipt.root"),
        ({"logsBloom": "0x00"}, "receipt.logsBloom"),
        ({"cumulativeGasUsed": "0x" + "1" * 17}, "receipt.cumulativeGasUsed"),
        ({"logs": None}, "receipt.logs"),
        ({"logs": [{"address": "0x" + "11" * 20, "topics": ["0x" + "22" * 32] * 5, "data": "0x"}]},
         "receipt.logs[0].topics"),
        ({"logs": [{"address": "0x" + "11" * 20, "topics": ["0x22"], "data": "0x"}]},
         "receipt.logs[0].topics[0]"),
        ({"logs": [{"address": "0x11", "topics": [], "data": "0x"}]}, "receipt.logs[0].address"),
    ],
)  # fmt: skip
def test_encode_rejects_malformed_receipts(change: dict[str, Any], field: str) -> None:
    """Unknown types (OP deposits 0x7e), bad status, root on a typed receipt, bad logs: rejected."""
    receipt = _synthetic_receipt(0, "0x2")
    receipt.update(change)
    with pytest.raises(MalformedEvidence) as info:
        encode_receipt(receipt)
    assert info.value.field == field


def test_missing_type_means_legacy() -> None:
    """Receipts from pre-Berlin nodes have no `type`: they encode as legacy."""
    receipt = _synthetic_receipt(0, "0x0")
    legacy = encode_receipt(receipt)
    del receipt["type"]
    assert encode_receipt(receipt) == legacy
    assert legacy[0] >= 0xC0


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00" + encode([b"\x01", b"", b"\x00" * 256, []]),  # type byte 0
        b"\x7e" + encode([b"\x01", b"", b"\x00" * 256, []]),  # OP deposit
        b"\x02" + encode([b"\x01", b"", b"\x00" * 256]),  # 3 items
        b"\x02" + encode([b"\x02", b"", b"\x00" * 256, []]),  # status 2
        b"\x02" + encode([b"\x11" * 32, b"", b"\x00" * 256, []]),  # root in a typed receipt
        b"\x02" + encode([b"\x01", b"\x00\x01", b"\x00" * 256, []]),  # gas with a leading zero
        b"\x02" + encode([b"\x01", b"", b"\x00" * 255, []]),  # short bloom
        b"\x02" + encode([b"\x01", b"", b"\x00" * 256, [[b"\x11" * 19, [], b""]]]),
        b"\x02" + encode([b"\x01", b"", b"\x00" * 256, [[b"\x11" * 20, [b"\x22" * 31], b""]]]),
        b"\x02" + encode([b"\x01", b"", b"\x00" * 256, [[b"\x11" * 20, [], [b""]]]]),
        b"\x02" + encode([b"\x01", b"", b"\x00" * 256, []]) + b"\x80",  # trailing byte
        b"\x02\x81\x00",  # not canonical RLP
    ],
)
def test_decode_is_strict(value: bytes) -> None:
    """Consensus bytes that no node would produce are MalformedEvidence (receipt_encoding)."""
    with pytest.raises(MalformedEvidence) as info:
        decode_receipt(value)
    assert info.value.check == "receipt_encoding"


def _synthetic_receipt(index: int, tx_type: str) -> dict[str, Any]:
    return {
        "type": tx_type,
        "status": "0x1",
        "cumulativeGasUsed": hex(21000 * (index + 1)),
        "logsBloom": "0x" + "00" * 256,
        "logs": [
            {
                "address": "0x" + "ab" * 20,
                "topics": ["0x" + "01" * 32, "0x" + "02" * 32],
                "data": "0x",
            }
        ],
        "transactionIndex": hex(index),
    }
