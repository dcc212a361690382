"""Every block, transaction, receipt and proof the devnode returns verifies with ``verifier/``."""

from __future__ import annotations

from typing import Any

import pytest

from devnet.fisco.node import DevNode
from tests.integration.devnet.client import RpcClient, selector, send_block, uint
from verifier.fisco.header import compute_header_hash
from verifier.fisco.receipt import compute_receipt_hash
from verifier.fisco.transaction import (
    compute_transaction_hash,
    nonce_encoding_for_version,
    recover_transaction_sender,
)
from verifier.hashing import CryptoSuite, keccak256
from verifier.merkle.fisco import compute_merkle_root, verify_merkle_proof
from verifier.signatures.quorum import verify_signature_list

pytestmark = pytest.mark.integration
SUITE = CryptoSuite.KECCAK256_SECP256K1


def _verify_block(node: DevNode, client: RpcClient, number: int) -> dict[str, Any]:
    block: dict[str, Any] = client.call("getBlockByNumber", number, False, True)
    digest = compute_header_hash(block, keccak256)
    assert "0x" + digest.hex() == block["hash"]
    trusted = {k.public_key: 1 for k in node.sealer_keys}
    sealers = [bytes.fromhex(pk[2:]) for pk in block["sealerList"]]
    assert sealers == [k.public_key for k in node.sealer_keys]
    signatures = [
        (s["sealerIndex"], bytes.fromhex(s["signature"][2:])) for s in block["signatureList"]
    ]
    result = verify_signature_list(digest, sealers, signatures, trusted, SUITE)
    assert result.have >= result.need == 3
    return block


def _verify_transactions(client: RpcClient, block: dict[str, Any]) -> None:
    tx_hashes = [bytes.fromhex(h[2:]) for h in block["transactions"]]
    assert "0x" + compute_merkle_root(tx_hashes, keccak256).hex() == block["txsRoot"]
    receipt_hashes = []
    encoding = nonce_encoding_for_version(block["version"])
    for tx_hash in block["transactions"]:
        tx = client.call("getTransaction", tx_hash, True)
        leaf = compute_transaction_hash(tx, keccak256, nonce_encoding=encoding)
        assert "0x" + leaf.hex() == tx_hash
        sender = recover_transaction_sender(leaf, bytes.fromhex(tx["signature"][2:]), SUITE)
        assert "0x" + sender.hex() == tx["from"]
        root = bytes.fromhex(block["txsRoot"][2:])
        verify_merkle_proof(tx["txProof"], leaf, root, keccak256, check="tx_proof")
        receipt = client.call("getTransactionReceipt", tx_hash, True)
        receipt_leaf = compute_receipt_hash(receipt, keccak256)
        assert "0x" + receipt_leaf.hex() == receipt["hash"]
        assert receipt["blockNumber"] == block["number"]
        receipts_root = bytes.fromhex(block["receiptsRoot"][2:])
        verify_merkle_proof(
            receipt["txReceiptProof"], receipt_leaf, receipts_root, keccak256, check="receipt_proof"
        )
        receipt_hashes.append(receipt_leaf)
    assert "0x" + compute_merkle_root(receipt_hashes, keccak256).hex() == block["receiptsRoot"]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 53])
def test_block_of_n_transactions_verifies(
    node: DevNode, client: RpcClient, store_address: str, count: int
) -> None:
    """A block with ``count`` transactions: header, quorum, tx/receipt hashes and proofs verify."""
    receipts = send_block(
        node, client, store_address, list(range(1000 * count, 1000 * count + count))
    )
    block = _verify_block(node, client, receipts[0]["blockNumber"])
    assert len(block["transactions"]) == count
    _verify_transactions(client, block)
    proof = client.call("getTransaction", block["transactions"][-1], True)["txProof"]
    levels = (count - 1).bit_length()
    markers = [item for item in proof if item[8:] == "0" * 56]
    assert len(markers) == (0 if count == 1 else levels)  # one count marker per tree level


def test_genesis_and_all_blocks_verify(
    node: DevNode, client: RpcClient, store_address: str
) -> None:
    """The genesis hash (empty roots quirk) and every block up to the head recompute."""
    genesis = client.call("getBlockByNumber", 0, False, False)
    assert "0x" + compute_header_hash(genesis, keccak256).hex() == genesis["hash"]
    assert genesis["txsRoot"] == "0x" + "00" * 32
    assert genesis["gasUsed"] == "0"
    for number in range(1, client.call("getBlockNumber") + 1):
        _verify_block(node, client, number)


def test_send_transaction_with_proof(client: RpcClient, store_address: str) -> None:
    """sendTransaction(requireProof) puts the receipt proof in txReceiptProof and receiptProof."""
    tx = client.tx_hex(store_address, selector("set(uint256)") + uint(5))
    result = client.call("sendTransaction", tx, True)
    assert result["txReceiptProof"] == result["receiptProof"]
    leaf = compute_receipt_hash(result, keccak256)
    block = client.call("getBlockByNumber", result["blockNumber"], True, True)
    verify_merkle_proof(
        result["txReceiptProof"],
        leaf,
        bytes.fromhex(block["receiptsRoot"][2:]),
        keccak256,
        check="receipt_proof",
    )
