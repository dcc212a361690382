"""JSON shapes of the node's results (``JsonRpcImpl_2_0.cpp::toJsonResp``; spec section 1.3)."""

from __future__ import annotations

import json
from typing import Any

from devnet.fisco.hashing import checksum_address, merkle_proof
from devnet.fisco.ledger import Ledger, Record

ZERO = "0x" + "00" * 32


def node_json_string(value: Any) -> str:
    """A JSON value as the node's ``Json::FastWriter`` prints it: compact, keys sorted, newline."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n"


def _root(value: str) -> str:
    return "0x" + value if value else ZERO


def header_json(block: Record) -> dict[str, Any]:
    return {
        "consensusWeights": list(block["weights"]),
        "extraData": "0x" + block["extraData"],
        "gasUsed": block["gasUsed"] or "0",
        "hash": "0x" + block["hash"],
        "number": block["number"],
        "parentInfo": [{"blockHash": "0x" + h, "blockNumber": n} for n, h in block["parent"]],
        "receiptsRoot": _root(block["receiptsRoot"]),
        "sealer": block["sealer"],
        "sealerList": ["0x" + pk for pk in block["sealerList"]],
        "signatureList": [
            {"sealerIndex": i, "signature": "0x" + sig} for i, sig in block["signatures"]
        ],
        "stateRoot": _root(block["stateRoot"]),
        "timestamp": block["timestamp"],
        "txsRoot": _root(block["txsRoot"]),
        "version": block["version"],
    }


def block_json(
    ledger: Ledger, block: Record, only_header: bool, only_tx_hash: bool
) -> dict[str, Any]:
    result = header_json(block)
    if not only_header:
        if only_tx_hash:
            result["transactions"] = ["0x" + h for h in block["txs"]]
        else:
            txs = (ledger.transaction(h) for h in block["txs"])
            result["transactions"] = [transaction_json(tx) for tx in txs if tx is not None]
    return result


def transaction_json(tx: Record) -> dict[str, Any]:
    return {
        "abi": tx["abi"],
        "blockLimit": tx["blockLimit"],
        "chainID": tx["chainID"],
        "extraData": tx["extraData"],
        "from": "0x" + tx["from"],
        "groupID": tx["groupID"],
        "hash": "0x" + tx["hash"],
        "importTime": tx["importTime"],
        "input": "0x" + tx["input"],
        "nonce": tx["nonce"].encode().hex(),
        "signature": "0x" + tx["signature"],
        "to": tx["to"],
        "version": tx["version"],
    }


def receipt_json(receipt: Record, tx_hash: str, *, submit_ok: bool = True) -> dict[str, Any]:
    contract = receipt["contractAddress"]
    return {
        "blockNumber": receipt["blockNumber"],
        "checksumContractAddress": "0x" + checksum_address(contract) if contract else "",
        "contractAddress": "0x" + contract if contract else "",
        "gasUsed": receipt["gasUsed"],
        "hash": "0x" + receipt["hash"] if submit_ok else "0x",
        "logEntries": [
            {"address": addr, "data": "0x" + data, "topics": ["0x" + t for t in topics]}
            for addr, topics, data in receipt["logs"]
        ],
        "message": receipt["message"],
        "output": "0x" + receipt["output"],
        "status": receipt["status"],
        "transactionHash": "0x" + tx_hash,
        "version": receipt["version"],
    }


def tx_proof(ledger: Ledger, tx: Record) -> list[str]:
    block = ledger.block(tx["blockNumber"])
    assert block is not None
    leaves = [bytes.fromhex(h) for h in block["txs"]]
    return merkle_proof(leaves, tx["index"])


def receipt_proof(ledger: Ledger, tx: Record) -> list[str]:
    block = ledger.block(tx["blockNumber"])
    assert block is not None
    leaves = []
    for h in block["txs"]:
        receipt = ledger.receipt(h)
        assert receipt is not None
        leaves.append(bytes.fromhex(receipt["hash"]))
    # The node proves the first leaf equal to this one (``ranges::find``), as identical
    # receipts in one block share a hash.
    return merkle_proof(leaves, leaves.index(leaves[tx["index"]]))


def log_json(block: Record, tx_index: int, log_index: int, log: list[Any]) -> dict[str, Any]:
    addr, topics, data = log
    return {
        "address": "0x" + addr,
        "blockHash": "0x" + block["hash"],
        "blockNumber": hex(block["number"]),
        "data": "0x" + data,
        "logIndex": hex(log_index),
        "removed": False,
        "topics": ["0x" + t for t in topics],
        "transactionHash": "0x" + block["txs"][tx_index],
        "transactionIndex": hex(tx_index),
    }
