"""FISCO BCOS 3.x receipt hashes, log decoding, and receipt-proof tampering."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import VectorLoader, load_shared_vector
from verifier.errors import MalformedEvidence, VerificationError
from verifier.fisco.receipt import (
    FiscoLog,
    compute_receipt_hash,
    compute_receipt_hash_from_fields,
    decode_log_entries,
)
from verifier.hashing import keccak256, sm3
from verifier.merkle.fisco import (
    compute_merkle_proof,
    compute_merkle_root,
    verify_merkle_proof,
)

WECROSS = "fisco/wecross_bcos3_vectors.json"
DOC = "fisco/fisco_doc_examples.json"


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


@pytest.mark.vectors
@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("receipt", "3949c140"),
        ("receipt_with_log", "0d387a50"),
        ("send_transaction_receipt", "aa9f2aed"),
        ("deploy_receipt_data_archive", "f358ed29"),
    ],
)
def test_doc_keccak_receipts(shared_vector: VectorLoader, key: str, prefix: str) -> None:
    """The doc keccak receipts (plain, with a log, sendTransaction, deploy) recompute."""
    receipt = shared_vector(DOC)["keccak_chain"][key]
    digest = compute_receipt_hash(receipt, keccak256)
    assert digest == _b(receipt["hash"])
    assert digest.hex().startswith(prefix)


@pytest.mark.vectors
def test_doc_sm_deploy_receipt_is_block2_receipts_root(shared_vector: VectorLoader) -> None:
    """The SM deploy receipt (contractAddress hashed without 0x) is block 2's receiptsRoot."""
    sm_chain = shared_vector(DOC)["sm_chain"]
    receipt = sm_chain["deploy_receipt_block2"]
    digest = compute_receipt_hash(receipt, sm3)
    assert digest == _b(receipt["hash"]) == _b(sm_chain["block2_header"]["receiptsRoot"])
    address = receipt["contractAddress"]
    for text, matches in ((address[2:], True), (address, False)):
        manual = bytes(4) + b"24363" + text.encode() + bytes(4) + (2).to_bytes(8, "big")
        assert (sm3(manual) == digest) is matches


@pytest.mark.vectors
def test_wecross_receipts_and_proofs(shared_vector: VectorLoader) -> None:
    """Block 60's receipt reaches receiptsRoot by its proof; block 72's receipt is the root."""
    v = shared_vector(WECROSS)
    digest = compute_receipt_hash(v["receipt"], keccak256)
    assert digest == _b(v["receipt"]["hash"])
    verify_merkle_proof(
        v["receipt"]["txReceiptProof"],
        digest,
        _b(v["block"]["receiptsRoot"]),
        keccak256,
        check="receipt_proof",
    )
    single = compute_receipt_hash(v["receipt0"], keccak256)
    assert compute_merkle_root([single], keccak256) == _b(v["block0"]["receiptsRoot"])


@pytest.mark.vectors
def test_reverted_receipt_has_no_printed_hash(shared_vector: VectorLoader) -> None:
    """A failed sendTransaction prints hash "0x"; the receipt still hashes deterministically."""
    receipt = shared_vector(DOC)["keccak_chain"]["reverted_receipt"]
    assert receipt["hash"] == "0x"
    assert len(compute_receipt_hash(receipt, keccak256)) == 32


@pytest.mark.vectors
def test_decode_log_entries(shared_vector: VectorLoader) -> None:
    """The doc log decodes to a 20-byte address, topic0 = keccak(LogIncrement(...)), data."""
    receipt = shared_vector(DOC)["keccak_chain"]["receipt_with_log"]
    (log,) = decode_log_entries(receipt)
    assert isinstance(log, FiscoLog)
    assert log.address == _b("0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94")
    assert log.topics == (keccak256(b"LogIncrement(address,uint256)"),)
    assert log.data == _b(receipt["logEntries"][0]["data"])


def _fields(**changes: Any) -> bytes:
    base: dict[str, Any] = {
        "version": 0,
        "gas_used": "21000",
        "contract_address": "",
        "status": 0,
        "output": b"",
        "logs": [("0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94", [b"\x01" * 32], b"\x02")],
        "block_number": 9,
    }
    base |= changes
    return compute_receipt_hash_from_fields(**base, hasher=keccak256)


def test_receipt_hash_by_hand() -> None:
    """v0: H(be32 version ‖ gasUsed ‖ contractAddress ‖ be32 status ‖ output ‖ logs ‖ be64 n)."""
    manual = (
        bytes(4)
        + b"21000"
        + bytes(4)
        + b"0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94"
        + b"\x01" * 32
        + b"\x02"
        + (9).to_bytes(8, "big")
    )
    assert _fields() == keccak256(manual)


def test_effective_gas_price_only_from_v1() -> None:
    """v1 hashes effectiveGasPrice after output; v0 refuses a non-empty one."""
    assert _fields(version=1, effective_gas_price="0x1") != _fields(version=1)
    with pytest.raises(MalformedEvidence):
        _fields(effective_gas_price="0x1")
    receipt = {
        "version": 1,
        "gasUsed": "21000",
        "contractAddress": "",
        "status": 0,
        "output": "0x",
        "logEntries": [
            {"address": "0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94", "topics": [], "data": "0x"}
        ],
        "blockNumber": 9,
        "effectiveGasPrice": "0x1",
    }
    expected = _fields(
        version=1,
        effective_gas_price="0x1",
        logs=[("0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94", [], b"")],
    )
    assert compute_receipt_hash(receipt, keccak256) == expected
    del receipt["effectiveGasPrice"]
    with pytest.raises(MalformedEvidence, match="effectiveGasPrice"):
        compute_receipt_hash(receipt, keccak256)


@pytest.mark.parametrize(
    "changes",
    [
        {"gas_used": "0x5208"},
        {"gas_used": 21000},
        {"contract_address": "0x" + "ab" * 20},
        {"contract_address": "ab" * 19},
        {"logs": [("0x0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94", [], b"")]},
        {"logs": [("0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94", [b"\x01" * 31], b"")]},
        {"logs": [("0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94", b"\x01" * 32, b"")]},
        {"logs": [("0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94", [])]},
        {"status": -1},
        {"block_number": "9"},
        {"output": "0x"},
    ],
)
def test_from_fields_rejects_bad_values(changes: dict[str, Any]) -> None:
    """Stored-form violations (0x addresses, hex gasUsed, short topics) are MalformedEvidence."""
    with pytest.raises(MalformedEvidence):
        _fields(**changes)


@pytest.mark.vectors
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("contractAddress",), "82a3c3289a9f234a38aceed3016d1ff0e0f922b3"),
        (("contractAddress",), "0x82a3c3289a9f234a38aceed3016d1ff0e0f922"),
        (("gasUsed",), 24363),
        (("gasUsed",), "0x5f2b"),
        (("status",), "0"),
        (("blockNumber",), 2.0),
        (("output",), ""),
        (("logEntries",), [{"address": "0x" + "00" * 20, "topics": [], "data": "0x"}]),
        (("logEntries",), [{"address": "00" * 20, "topics": ["0x00"], "data": "0x"}]),
        (("logEntries",), [{"address": "00" * 20, "topics": []}]),
        (("logEntries",), None),
    ],
)
def test_strict_receipt_json(shared_vector: VectorLoader, path: tuple[str], value: Any) -> None:
    """Wrongly encoded receipt JSON fields are MalformedEvidence naming the field."""
    receipt = copy.deepcopy(shared_vector(DOC)["sm_chain"]["deploy_receipt_block2"])
    receipt[path[0]] = value
    with pytest.raises(MalformedEvidence, match=path[0]):
        compute_receipt_hash(receipt, sm3)


def _mutate_receipt(receipt: dict[str, Any], choice: int, byte: int) -> None:
    """One single change to a committed field of the doc receipt with a log."""
    log = receipt["logEntries"][0]
    kind = choice % 8
    if kind == 0:
        receipt["gasUsed"] = str(int(receipt["gasUsed"]) + 1 + byte)
    elif kind == 1:
        receipt["status"] += 1 + byte
    elif kind == 2:
        receipt["blockNumber"] += 1 + byte
    elif kind == 3:
        receipt["version"] += 1 + byte % 3
        receipt["effectiveGasPrice"] = ""
    elif kind in (4, 5):
        field, holder = ("output", receipt) if kind == 4 else ("data", log)
        raw = bytearray(_b(holder[field]))
        raw[byte % len(raw)] ^= 1 + byte % 255
        holder[field] = "0x" + raw.hex()
    elif kind == 6:
        raw = bytearray(_b(log["topics"][0]))
        raw[byte % 32] ^= 1 + byte % 255
        log["topics"][0] = "0x" + raw.hex()
    else:
        text = log["address"]
        pos = byte % len(text)
        log["address"] = text[:pos] + ("a" if text[pos] != "a" else "b") + text[pos + 1 :]


@pytest.mark.vectors
@settings(max_examples=120, deadline=None)
@given(choice=st.integers(0, 10_000), byte=st.integers(0, 10_000))
def test_any_committed_receipt_change_fails_its_proof(choice: int, byte: int) -> None:
    """Changing any committed field of a receipt makes its proof miss the root."""
    original = load_shared_vector(DOC)["keccak_chain"]["receipt_with_log"]
    receipts = [keccak256(b"r%d" % i) for i in range(5)] + [_b(original["hash"])]
    root = compute_merkle_root(receipts, keccak256)
    proof = compute_merkle_proof(receipts, 5, keccak256)
    receipt = copy.deepcopy(original)
    _mutate_receipt(receipt, choice, byte)
    with pytest.raises(VerificationError):
        _verify_receipt(receipt, proof, root)


def _verify_receipt(receipt: dict[str, Any], proof: list[str], root: bytes) -> None:
    leaf = compute_receipt_hash(receipt, keccak256)
    verify_merkle_proof(proof, leaf, root, keccak256, check="receipt_proof")


@pytest.mark.vectors
def test_uncommitted_fields_do_not_change_the_hash(shared_vector: VectorLoader) -> None:
    """transactionHash, from, to, message and hash are not in the receipt hash: never trust them."""
    receipt = copy.deepcopy(shared_vector(DOC)["keccak_chain"]["receipt_with_log"])
    digest = compute_receipt_hash(receipt, keccak256)
    receipt |= {"transactionHash": "0x" + "00" * 32, "from": "0x" + "00" * 20, "message": "x"}
    assert compute_receipt_hash(receipt, keccak256) == digest
