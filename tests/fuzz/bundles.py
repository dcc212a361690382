"""Valid evidence bundles of any shape: seeds for the fuzzer, worst cases for the limit tests
and the adversarial benchmark.

``gateway verify`` takes the trust root from the bundle, so an attacker can make a bundle that
verifies with any number of logs, sealers or signatures: these builders do the same, with the
project's own trie, Merkle and signing code, so that a bound can be probed exactly at its value
(accepted) and one past it (rejected).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from devnet.examples import evm_header, sealer_public_key, signed_fisco_block
from verifier.evm.header import compute_block_hash
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.fisco.receipt import compute_receipt_hash
from verifier.hashing import CryptoSuite, hasher_for, keccak256
from verifier.merkle.fisco import compute_merkle_proof, compute_merkle_root
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root

FORMAT = "interop-evidence/1"


def derive(label: str) -> bytes:
    """32 deterministic bytes for ``label``."""
    return hashlib.sha256(b"interop-gateway limits " + label.encode()).digest()


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


def dumps(bundle: dict[str, Any]) -> bytes:
    """The compact JSON bytes of a bundle, as ``gateway verify`` would read them."""
    return json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode()


def pad_to(bundle: dict[str, Any], size: int) -> bytes:
    """``bundle`` as JSON of exactly ``size`` bytes, grown by an ignored top-level string."""
    base = dumps(dict(bundle, padding=""))
    if len(base) > size:
        raise ValueError(f"the bundle is {len(base)} bytes already, more than {size}")
    raw = dumps(dict(bundle, padding="x" * (size - len(base))))
    assert len(raw) == size
    return raw


# ----------------------------------------------------------------------------------------- EVM


def evm_log(i: int, *, topics: int = 4, data: int = 32, rpc_fields: bool = True) -> dict[str, Any]:
    """An ``eth_getTransactionReceipt`` log with ``topics`` topics and ``data`` bytes of data."""
    log: dict[str, Any] = {
        "address": hex0x(derive(f"evm-log-address-{i % 7}")[:20]),
        "topics": [hex0x(derive(f"evm-topic-{i}-{t}")) for t in range(topics)],
        "data": hex0x(bytes([i % 251]) * data),
    }
    if rpc_fields:  # derived by the node, never hashed, but present in real RPC output
        log |= {
            "blockNumber": "0x1a2b",
            "transactionHash": hex0x(derive("evm-tx-1")),
            "transactionIndex": "0x1",
            "blockHash": hex0x(derive("evm-block-hash-claim")),
            "logIndex": hex(i),
            "removed": False,
        }
    return log


def evm_bundle(logs: Sequence[dict[str, Any]], *, log_index: int | None = None) -> dict[str, Any]:
    """A valid EVM bundle proving receipt 1 (carrying ``logs``) of a 3-receipt Cancun block."""
    receipts: list[dict[str, Any]] = []
    cumulative = 0
    for i in range(3):
        cumulative += 21_000 + 1_000 * i
        receipts.append(
            {
                "type": "0x2",
                "status": "0x1",
                "cumulativeGasUsed": hex(cumulative),
                "logsBloom": hex0x(bytes(256)),
                "logs": list(logs) if i == 1 else [],
                "transactionIndex": hex(i),
                "transactionHash": hex0x(derive(f"evm-tx-{i}")),
                "gasUsed": hex(21_000 + 1_000 * i),
            }
        )
    items = {receipt_key(i): encode_receipt(r) for i, r in enumerate(receipts)}
    header = evm_header(compute_mpt_root(items), cumulative, derive=derive, gas_limit=36_000_000)
    block_hash = hex0x(compute_block_hash(header))
    header["hash"] = block_hash
    bundle: dict[str, Any] = {
        "format": FORMAT,
        "family": "evm",
        "chain_id": "limits-evm",
        "crypto": "keccak256-secp256k1",
        "block": header,
        "receipt": dict(receipts[1], blockHash=block_hash, blockNumber=header["number"]),
        "proof": [hex0x(node) for node in compute_mpt_proof(items, receipt_key(1))],
        "trust": {"block_hash": block_hash},
    }
    if log_index is not None:
        bundle["log_index"] = log_index
    return bundle


# --------------------------------------------------------------------------------------- FISCO


def fisco_log(i: int, *, topics: int = 4, data: int = 32) -> dict[str, Any]:
    """A ``getTransactionReceipt`` log entry (address as 40 hex characters, no 0x)."""
    return {
        "address": derive(f"fisco-log-address-{i % 7}")[:20].hex(),
        "topics": [hex0x(derive(f"fisco-topic-{i}-{t}")) for t in range(topics)],
        "data": hex0x(bytes([i % 251]) * data),
    }


def sealer_secrets(count: int) -> list[bytes]:
    """``count`` deterministic sealer private keys (valid for both curves)."""
    return [derive(f"sealer-{i}") for i in range(count)]


def fisco_bundle(
    suite: CryptoSuite,
    logs: Sequence[dict[str, Any]] = (),
    *,
    sealers: int = 4,
    signers: Sequence[int] | None = None,
    secrets: Sequence[bytes] | None = None,
    parents: int = 1,
) -> dict[str, Any]:
    """A valid FISCO BCOS 3.x bundle (no ``log_index``) proving receipt 1 of a 3-receipt block.

    ``sealers`` trusted sealers of weight 1 are in the header; ``signers`` (default: all) sign.
    Pass ``secrets`` (from :func:`sealer_secrets`) to reuse keys across calls. The header lists
    ``parents`` entries in ``parentInfo`` (a real 3.x block has one).
    """
    hasher = hasher_for(suite.hash_scheme)
    keys = list(secrets) if secrets is not None else sealer_secrets(sealers)
    keys = keys[:sealers]
    pubs = [sealer_public_key(suite, k) for k in keys]
    number = 42
    receipts = []
    for i in range(3):
        receipt: dict[str, Any] = {
            "version": 0,
            "contractAddress": "",
            "gasUsed": str(20_000 + i),
            "status": 0,
            "output": "0x",
            "logEntries": list(logs) if i == 1 else [],
            "blockNumber": number,
            "message": "",
            "transactionHash": hex0x(derive(f"fisco-tx-{i}")),
        }
        receipt["hash"] = hex0x(compute_receipt_hash(receipt, hasher))
        receipts.append(receipt)
    leaves = [bytes.fromhex(r["hash"][2:]) for r in receipts]
    block = signed_fisco_block(
        suite,
        keys,
        signers=range(len(keys)) if signers is None else signers,
        sealer=0,
        number=number,
        gas_used=sum(int(r["gasUsed"]) for r in receipts),
        parents=[derive(f"fisco-parent-{p}") for p in range(parents)],
        txs_root=derive("fisco-txs"),
        receipts_root=compute_merkle_root(leaves, hasher),
        state_root=derive("fisco-state"),
    )
    return {
        "format": FORMAT,
        "family": "fisco-bcos-3",
        "chain_id": "limits-fisco",
        "crypto": suite.value,
        "block": block,
        "receipt": receipts[1],
        "proof": compute_merkle_proof(leaves, 1, hasher),
        "trust": {"sealers": [{"node_id": p.hex(), "weight": 1} for p in pubs]},
    }


def keccak_hex(text: str) -> str:
    """keccak256 of ``text`` as 0x-hex (event topics in hand-written seeds)."""
    return hex0x(keccak256(text.encode()))
