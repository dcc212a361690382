"""EVM transactions: envelopes match real hashes and transactionsRoot, and py-evm for types 0-4."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth.vm.forks.prague.transactions import Authorization, PragueTransactionBuilder
from eth_typing import Address, Hash32
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import VectorLoader, load_shared_vector
from verifier.errors import MalformedEvidence, ProofMismatch, VerificationError
from verifier.evm.receipt import receipt_key
from verifier.evm.transaction import (
    compute_transaction_hash,
    encode_transaction,
    verify_transaction_proof,
)
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root

TX_FILES = [
    "evm/mainnet_1150000_homestead_receipts.json",
    "evm/mainnet_19432673_cancun_small_block.json",
]
SMALL = "evm/mainnet_19432673_cancun_small_block.json"
ADDRESS = Address(b"\x5a" * 20)
AUTHORITY = Address(b"\x6b" * 20)
SIG = {"y_parity": 1, "r": 0xA1 << 200, "s": 0xB2 << 100}


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _h(raw: bytes) -> str:
    return "0x" + raw.hex()


def _proofs(txs: list[dict[str, Any]]) -> tuple[bytes, list[list[str]]]:
    items = {receipt_key(int(t["transactionIndex"], 16)): encode_transaction(t) for t in txs}
    proofs = [
        [_h(n) for n in compute_mpt_proof(items, receipt_key(int(t["transactionIndex"], 16)))]
        for t in txs
    ]
    return compute_mpt_root(items), proofs


@pytest.mark.vectors
@pytest.mark.parametrize("rel", TX_FILES)
def test_hashes_and_transactions_root(shared_vector: VectorLoader, rel: str) -> None:
    """Every tx hash is keccak(envelope) and the envelopes rebuild transactionsRoot."""
    v = shared_vector(rel)
    for tx in v["transactions"]:
        assert compute_transaction_hash(tx) == _b(tx["hash"])
    root, proofs = _proofs(v["transactions"])
    assert root == _b(v["header"]["transactionsRoot"])
    for tx, proof in zip(v["transactions"], proofs, strict=True):
        assert verify_transaction_proof(root, tx, proof) == encode_transaction(tx)


@pytest.mark.vectors
def test_contract_creation_and_pre_eip155(shared_vector: VectorLoader) -> None:
    """Homestead holds a creation (`to` null) and v = 27/28 signatures; both hash correctly."""
    txs = shared_vector("evm/mainnet_1150000_homestead_receipts.json")["transactions"]
    creation = [t for t in txs if t["to"] is None]
    assert creation
    assert {t["v"] for t in txs} <= {"0x1b", "0x1c"}
    for tx in creation:
        assert compute_transaction_hash(tx) == _b(tx["hash"])


_TX_FIELDS = ["nonce", "gas", "value", "input", "r", "s", "to", "v", "type", "chainId"]


@pytest.mark.vectors
@settings(max_examples=80, deadline=None)
@given(pos=st.integers(0, 10), field=st.sampled_from(_TX_FIELDS), n=st.integers(1, 1000))
def test_tampered_transactions_are_rejected(pos: int, field: str, n: int) -> None:
    """Changing any signed field fails: against tx.hash, or against the proof without a hash."""
    v = load_shared_vector(SMALL)
    root, proofs = _proofs(v["transactions"])
    tx = copy.deepcopy(v["transactions"][pos])
    if field == "input":
        tx["input"] = tx["input"] + format(n % 256, "02x")
    elif field == "to":
        tx["to"] = _h(bytes([n % 256]) * 20) if _b(tx["to"]) != bytes([n % 256]) * 20 else None
    elif field == "type":
        tx["type"] = "0x2" if tx["type"] == "0x0" else "0x0"
    else:
        tx[field] = hex(int(tx[field], 16) + n)
    with pytest.raises(VerificationError) as with_hash:
        verify_transaction_proof(root, tx, proofs[pos])
    assert with_hash.value.check in ("transaction_hash", "transaction_encoding", "format")
    del tx["hash"]
    with pytest.raises(VerificationError):
        verify_transaction_proof(root, tx, proofs[pos])


@pytest.mark.vectors
def test_wrong_hash_claim_and_wrong_index(shared_vector: VectorLoader) -> None:
    """A wrong `hash` fails as transaction_hash; another index fails as transaction_proof."""
    v = shared_vector(SMALL)
    root, proofs = _proofs(v["transactions"])
    tx = copy.deepcopy(v["transactions"][2])
    tx["hash"] = v["transactions"][3]["hash"]
    with pytest.raises(ProofMismatch) as info:
        verify_transaction_proof(root, tx, proofs[2])
    assert info.value.check == "transaction_hash"
    tx = copy.deepcopy(v["transactions"][2])
    tx["transactionIndex"] = "0x3"
    with pytest.raises(VerificationError) as wrong:
        verify_transaction_proof(root, tx, proofs[2])
    assert wrong.value.check == "transaction_proof"


def _oracle_cases() -> list[tuple[dict[str, Any], bytes]]:
    """(JSON-RPC tx, py-evm envelope) for every type, built independently by py-evm."""
    build = PragueTransactionBuilder
    access = [(ADDRESS, [1, 2**255])]
    access_json = [
        {
            "address": _h(ADDRESS),
            "storageKeys": [_h((1).to_bytes(32, "big")), _h((2**255).to_bytes(32, "big"))],
        }
    ]
    blob_hashes = [Hash32(b"\x01" + b"\x33" * 31), Hash32(b"\x01" + b"\x44" * 31)]
    auth = Authorization(chain_id=1, address=AUTHORITY, nonce=9, y_parity=0, r=5, s=6)
    common = {"nonce": "0x7", "gas": "0x5208", "value": "0xde0b6b3a7640000", "input": "0xc0ffee"}
    sig = {"yParity": "0x1", "r": hex(SIG["r"]), "s": hex(SIG["s"])}
    fee = {"chainId": "0x1", "maxPriorityFeePerGas": "0x3b9aca00", "maxFeePerGas": "0x77359400"}
    legacy = build.new_transaction(7, 10**9, 21000, ADDRESS, 10**18, b"\xc0\xff\xee", 37, 5, 6)
    creation = build.new_transaction(7, 10**9, 21000, Address(b""), 0, b"\x60\x00", 27, 5, 6)
    t1 = build.new_access_list_transaction(
        1, 7, 10**9, 21000, ADDRESS, 10**18, b"\xc0\xff\xee", access, **SIG
    )
    t2 = build.new_dynamic_fee_transaction(
        1, 7, 10**9, 2 * 10**9, 21000, ADDRESS, 10**18, b"\xc0\xff\xee", access, **SIG
    )
    t3 = build.new_blob_transaction(
        1, 7, 10**9, 2 * 10**9, 21000, ADDRESS, 10**18, b"\xc0\xff\xee", [], 3, blob_hashes, **SIG
    )
    t4 = build.new_set_code_transaction(
        1, 7, 10**9, 2 * 10**9, 21000, ADDRESS, 10**18, b"\xc0\xff\xee", [], [auth], **SIG
    )
    return [
        ({**common, "type": "0x0", "gasPrice": "0x3b9aca00", "to": _h(ADDRESS), "v": "0x25",
          "r": "0x5", "s": "0x6"}, legacy.encode()),
        ({**common, "value": "0x0", "input": "0x6000", "gasPrice": "0x3b9aca00", "to": None,
          "v": "0x1b", "r": "0x5", "s": "0x6"}, creation.encode()),
        ({**common, **sig, "type": "0x1", "chainId": "0x1", "gasPrice": "0x3b9aca00",
          "to": _h(ADDRESS), "accessList": access_json}, t1.encode()),
        ({**common, **sig, **fee, "type": "0x2", "to": _h(ADDRESS), "accessList": access_json,
          "v": "0x1"}, t2.encode()),
        ({**common, **sig, **fee, "type": "0x3", "to": _h(ADDRESS), "accessList": [],
          "maxFeePerBlobGas": "0x3", "blobVersionedHashes": [_h(h) for h in blob_hashes]},
         t3.encode()),
        ({**common, **sig, **fee, "type": "0x4", "to": _h(ADDRESS), "accessList": [],
          "authorizationList": [{"chainId": "0x1", "address": _h(AUTHORITY), "nonce": "0x9",
                                 "yParity": "0x0", "r": "0x5", "s": "0x6"}]}, t4.encode()),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("tx", "expected"),
    _oracle_cases(),
    ids=["legacy-eip155", "legacy-creation", "0x1", "0x2", "0x3", "0x4"],
)
def test_envelopes_match_py_evm(tx: dict[str, Any], expected: bytes) -> None:
    """Each type's envelope equals the one py-evm builds from the same fields."""
    assert encode_transaction(tx) == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "0x7e"}, "transaction.type"),
        ({"to": None}, "transaction.to"),
        ({"yParity": "0x2"}, "transaction.yParity"),
        ({"v": "0x0"}, "transaction.yParity"),
        ({"yParity": None}, "transaction.yParity"),
        ({"accessList": [{"address": "0x" + "11" * 20, "storageKeys": ["0x01"]}]},
         "transaction.accessList[0].storageKeys[0]"),
        ({"blobVersionedHashes": None}, "transaction.blobVersionedHashes"),
        ({"nonce": "0x1" + "0" * 16}, "transaction.nonce"),
        ({"input": "0x0"}, "transaction.input"),
    ],
)  # fmt: skip
def test_malformed_transactions(change: dict[str, Any], field: str) -> None:
    """Unknown types, a blob tx creating a contract, bad parity or fields: MalformedEvidence."""
    tx = dict(_oracle_cases()[4][0])
    tx.update(change)
    if change.get("yParity", "") is None:
        tx.pop("v", None)
    with pytest.raises(MalformedEvidence) as info:
        encode_transaction(tx)
    assert info.value.field == field


def test_legacy_chain_id_must_match_v() -> None:
    """An EIP-155 tx's printed chainId is not encoded, so it must agree with v."""
    tx = dict(_oracle_cases()[0][0])
    envelope = encode_transaction(tx)
    tx["chainId"] = "0x1"  # v = 0x25 = 1 * 2 + 35
    assert encode_transaction(tx) == envelope
    tx["chainId"] = "0x2"
    with pytest.raises(MalformedEvidence) as info:
        encode_transaction(tx)
    assert info.value.field == "transaction.chainId"
