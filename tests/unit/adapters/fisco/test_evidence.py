"""Seal evidence: only the exact seal() is a fact source, and twin receipts get a proof for
the seal's own index (relay-protocol requirement 12). Stub endpoint, no network."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest
from eth_abi.abi import encode

from adapters.fisco.evidence import SealEvidence, fetch_seal_evidence, seal_call_problem
from adapters.fisco.rpc import FiscoRpcClient
from adapters.fisco.settings import FiscoEndpoint, FiscoSettings
from verifier.hashing import keccak256
from verifier.merkle.fisco import compute_merkle_proof, compute_merkle_root
from verifier.messages import seal_call_data

GATEWAY = bytes.fromhex("1a" * 20)
SETTINGS = FiscoSettings(
    chain="fisco-test",
    endpoints=(FiscoEndpoint("http://stub"),),
    gateway=GATEWAY,
    sealers=(("ab" * 64, 1),),
    relayer_key=b"\x01" * 32,
)
SEAL_TX = "0x" + "cc" * 32
SENT_ID = b"\x07" * 32


def _leaf(n: int) -> bytes:
    return bytes([n]) * 32


def seal_pair(receipt_hash: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    tx = {
        "version": 0,
        "chainID": "chain0",
        "groupID": "group0",
        "nonce": "12345678901234567890",
        "to": "0x" + GATEWAY.hex(),
        "input": "0x" + seal_call_data(keccak256).hex(),
        "abi": "",
        "hash": SEAL_TX,
    }
    topic0 = keccak256(b"Sealed(uint64,bytes32[],bytes32[])")
    receipt = {
        "version": 0,
        "status": 0,
        "output": "0x",
        "contractAddress": "",
        "gasUsed": "30000",
        "blockNumber": 5,
        "transactionHash": SEAL_TX,
        "hash": "0x" + receipt_hash.hex(),
        "logEntries": [
            {
                "address": GATEWAY.hex(),
                "topics": ["0x" + topic0.hex(), "0x" + (1).to_bytes(32, "big").hex()],
                "data": "0x" + encode(["bytes32[]", "bytes32[]"], [[SENT_ID], []]).hex(),
            }
        ],
    }
    return tx, receipt


class StubNode:
    url = "http://stub"
    name = "http://stub"
    chain = "fisco-test"

    def __init__(self, leaves: list[bytes], index: int) -> None:
        self.hashes = ["0x" + bytes([0xA0 + i]).hex() * 32 for i in range(len(leaves))]
        self.hashes[index] = SEAL_TX
        self.leaves = leaves
        self.tx, self.receipt = seal_pair(leaves[index])
        self.receipt["txReceiptProof"] = compute_merkle_proof(leaves, index, keccak256)
        self.block = {
            "number": 5,
            "receiptsRoot": "0x" + compute_merkle_root(leaves, keccak256).hex(),
        }

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        if method == "getTransaction":
            return copy.deepcopy(self.tx)
        if method == "getBlockByNumber":
            return dict(self.block, transactions=list(self.hashes))
        assert method == "getTransactionReceipt"
        if params[0] == SEAL_TX:
            return copy.deepcopy(self.receipt)
        return {"hash": "0x" + self.leaves[self.hashes.index(params[0])].hex()}


async def _bundle(node: StubNode) -> dict[str, Any]:
    found = await fetch_seal_evidence(cast(FiscoRpcClient, node), SETTINGS, keccak256, SEAL_TX)
    assert isinstance(found, SealEvidence), found
    assert found.seal.sent_ids == (SENT_ID,)
    return found.bundle


async def test_twin_receipt_elsewhere_gets_the_own_index_proof() -> None:
    """The node proves the first identical receipt (index 0); the seal is at index 2, which
    that path cannot reach, so the proof is rebuilt for index 2."""
    leaves = [_leaf(1), _leaf(2), _leaf(1), _leaf(3)]
    node = StubNode(leaves, 2)
    bundle = await _bundle(node)
    own = compute_merkle_proof(leaves, 2, keccak256, as_node=False)
    assert own != node.receipt["txReceiptProof"]
    assert bundle["proof"] == own
    assert "transactions" not in bundle["block"]
    assert bundle["trust"]["call"] == {
        "to": "0x" + GATEWAY.hex(),
        "input": "0x" + seal_call_data(keccak256).hex(),
    }


async def test_node_proof_is_kept_when_it_reaches_the_index() -> None:
    """No twin: the node's proof is passed on unchanged."""
    leaves = [_leaf(1), _leaf(2), _leaf(3)]
    node = StubNode(leaves, 1)
    assert (await _bundle(node))["proof"] == node.receipt["txReceiptProof"]


CHANGES: list[tuple[str, str, Any]] = [
    ("tx", "version", 1),
    ("tx", "chainID", "chain1"),
    ("tx", "groupID", "group1"),
    ("tx", "nonce", "1" * 21),
    ("tx", "nonce", "12ab"),
    ("tx", "to", "0x" + "22" * 20),
    ("tx", "to", "0x" + GATEWAY.hex().upper()),
    ("tx", "input", "0x" + seal_call_data(keccak256).hex() + "00"),
    ("tx", "abi", "[]"),
    ("receipt", "status", 16),
    ("receipt", "output", "0x00"),
    ("receipt", "contractAddress", "0x" + "33" * 20),
    ("receipt", "transactionHash", "0x" + "dd" * 32),
]


@pytest.mark.parametrize(("part", "key", "value"), CHANGES)
def test_anything_but_the_exact_seal_call_is_refused(part: str, key: str, value: Any) -> None:
    """Every field the FISCO log binding pins, changed, makes the transaction no seal()."""
    tx, receipt = seal_pair(_leaf(1))
    assert seal_call_problem(tx, receipt, SETTINGS, keccak256) is None
    (tx if part == "tx" else receipt)[key] = value
    assert seal_call_problem(tx, receipt, SETTINGS, keccak256) is not None


def test_receipt_with_two_logs_or_another_address_is_refused() -> None:
    """Exactly one log, from the gateway."""
    tx, receipt = seal_pair(_leaf(1))
    receipt["logEntries"].append(receipt["logEntries"][0])
    assert seal_call_problem(tx, receipt, SETTINGS, keccak256) is not None
    tx, receipt = seal_pair(_leaf(1))
    receipt["logEntries"][0]["address"] = "22" * 20
    assert seal_call_problem(tx, receipt, SETTINGS, keccak256) is not None


def test_nonce_in_hex_of_its_bytes_is_accepted() -> None:
    """Nodes >= 3.3 print the nonce as hex of its text."""
    tx, receipt = seal_pair(_leaf(1))
    tx["nonce"] = b"987654321".hex()
    assert seal_call_problem(tx, receipt, SETTINGS, keccak256) is None


def test_settings_hide_keys_and_refuse_bad_values() -> None:
    """Keys never show in repr; a wrong gateway length is a ConfigurationError."""
    assert "relayer_key" not in repr(SETTINGS)
    assert "01010101" not in repr(SETTINGS)
    with pytest.raises(Exception, match="20-byte"):
        FiscoSettings(
            chain="fisco-test",
            endpoints=(FiscoEndpoint("http://x"),),
            gateway=b"\x01",
            sealers=(("ab" * 64, 1),),
        )
