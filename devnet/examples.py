"""Build the example evidence bundles in docs/examples/ from this project's own data.

Each example is a multi-receipt block made here: receipts with a cross-chain message log, the
project's own trie / Merkle builders for the proof, and (FISCO) headers signed by sealer keys
derived from a fixed seed. Deterministic except for SM2 signatures, which are randomised.

    python -m devnet.examples [--out docs/examples]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from verifier.evm.header import compute_block_hash
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.fisco.header import compute_header_hash
from verifier.fisco.receipt import compute_receipt_hash
from verifier.fisco.transaction import compute_transaction_hash
from verifier.hashing import CryptoSuite, Hasher, hasher_for, keccak256
from verifier.merkle.fisco import compute_merkle_proof, compute_merkle_root
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root
from verifier.signatures import secp256k1, sm2

SEED = b"interop-gateway examples v1"
EVENT = "CrossChainMessage(uint64,string,bytes)"
EVENT_ABI: dict[str, Any] = {
    "type": "event",
    "name": "CrossChainMessage",
    "anonymous": False,
    "inputs": [
        {"name": "seq", "type": "uint64", "indexed": True},
        {"name": "dstChain", "type": "string", "indexed": False},
        {"name": "payload", "type": "bytes", "indexed": False},
    ],
}
FISCO_CHAIN_ID = "chain0"
FISCO_GROUP_ID = "group0"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "examples"


def _derive(label: str) -> bytes:
    return hashlib.sha256(SEED + label.encode()).digest()


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _message_data(dst_chain: str, payload: bytes) -> bytes:
    """ABI encoding of (string dstChain, bytes payload), the event's data (seq is a topic)."""

    def dyn(b: bytes) -> bytes:
        return _word(len(b)) + b + b"\0" * (-len(b) % 32)

    head_dst = dyn(dst_chain.encode())
    return _word(64) + _word(64 + len(head_dst)) + head_dst + dyn(payload)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def evm_example(*, proven_status: int = 1) -> dict[str, Any]:
    """A Cancun-style block of 7 receipts; the proven one (index 5) carries the message log.

    ``proven_status=0`` makes that receipt a failed one that still carries the log, as a
    forged "Ethereum-compatible" block could (the tests' case).
    """
    topic0 = keccak256(EVENT.encode())
    contract = _derive("evm-contract")[:20]
    receipts: list[dict[str, Any]] = []
    cumulative = 0
    for i in range(7):
        cumulative += 21000 + 1000 * i
        logs = []
        if i % 2 == 1:
            data = _message_data("fisco-demo", f"hello from evm #{i}".encode())
            logs.append(
                {
                    "address": _hex(contract),
                    "topics": [_hex(topic0), _hex(_word(i))],
                    "data": _hex(data),
                    "logIndex": hex(len(receipts)),
                }
            )
        receipts.append(
            {
                "type": "0x2" if i % 3 else "0x0",
                "status": hex(proven_status) if i == 5 else "0x1" if i != 2 else "0x0",
                "cumulativeGasUsed": hex(cumulative),
                "logsBloom": _hex(bytes(256)),
                "logs": logs,
                "transactionIndex": hex(i),
                "transactionHash": _hex(_derive(f"evm-tx-{i}")),
                "gasUsed": hex(21000 + 1000 * i),
            }
        )
    items = {receipt_key(i): encode_receipt(r) for i, r in enumerate(receipts)}
    header = evm_header(compute_mpt_root(items), cumulative)
    block_hash = compute_block_hash(header)
    header["hash"] = _hex(block_hash)
    index = 5
    receipt = dict(receipts[index], blockHash=header["hash"], blockNumber=header["number"])
    proof = compute_mpt_proof(items, receipt_key(index))
    return {
        "format": "interop-evidence/1",
        "family": "evm",
        "chain_id": "anvil-demo",
        "crypto": "keccak256-secp256k1",
        "block": header,
        "receipt": receipt,
        "proof": [_hex(node) for node in proof],
        "log_index": 0,
        "trust": {"block_hash": header["hash"], "event": EVENT_ABI},
    }


def evm_header(
    receipts_root: bytes,
    gas_used: int,
    *,
    derive: Callable[[str], bytes] = _derive,
    gas_limit: int = 30_000_000,
) -> dict[str, Any]:
    """A Cancun-style header (block 0x1a2b) over ``receipts_root``, other roots derived; the
    caller adds ``hash`` (``compute_block_hash``)."""
    return {
        "parentHash": _hex(derive("evm-parent")),
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "miner": _hex(derive("evm-miner")[:20]),
        "stateRoot": _hex(derive("evm-state")),
        "transactionsRoot": _hex(derive("evm-txroot")),
        "receiptsRoot": _hex(receipts_root),
        "logsBloom": _hex(bytes(256)),
        "difficulty": "0x0",
        "number": "0x1a2b",
        "gasLimit": hex(gas_limit),
        "gasUsed": hex(gas_used),
        "timestamp": "0x6700a1b2",
        "extraData": "0x",
        "mixHash": _hex(derive("evm-mix")),
        "nonce": "0x0000000000000000",
        "baseFeePerGas": "0x7",
        "withdrawalsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
        "blobGasUsed": "0x0",
        "excessBlobGas": "0x0",
        "parentBeaconBlockRoot": _hex(derive("evm-beacon")),
    }


def fisco_transactions(
    suite: CryptoSuite, chain_id: str, contract: str, count: int
) -> list[dict[str, Any]]:
    """Signed calls to ``contract`` in getTransaction form (3.3 nodes: nonce as hex of text)."""
    hasher = hasher_for(suite.hash_scheme)
    sm = suite is CryptoSuite.SM3_SM2
    client = _derive(f"{chain_id}-client")
    pub = sealer_public_key(suite, client)
    out = []
    for i in range(count):
        nonce = str(int.from_bytes(_derive(f"{chain_id}-nonce-{i}")[:8], "big"))
        tx: dict[str, Any] = {
            "version": 0,
            "chainID": FISCO_CHAIN_ID,
            "groupID": FISCO_GROUP_ID,
            "blockLimit": 541,
            "nonce": nonce.encode().hex(),
            "to": "0x" + contract,
            "input": _hex(keccak256(b"send(string,bytes)")[:4] + _word(i)),
            "abi": "",
            "importTime": 1764300000000 - 1000 + i,
            "extraData": "",
            "from": _hex(hasher(pub)[12:]),
        }
        tx_hash = compute_transaction_hash(tx, hasher, nonce_encoding="hex")
        tx["hash"] = _hex(tx_hash)
        signature = sm2.sign(client, tx_hash) + pub if sm else secp256k1.sign(client, tx_hash)
        tx["signature"] = _hex(signature)
        out.append(tx)
    return out


def fisco_receipts(
    hasher: Hasher, number: int, contract: str, txs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    topic0 = hasher(EVENT.encode())
    out = []
    for i, tx in enumerate(txs):
        logs = []
        if i % 2 == 0:
            data = _message_data("anvil-demo", f"hello from fisco #{i}".encode())
            logs.append(
                {"address": contract, "topics": [_hex(topic0), _hex(_word(i))], "data": _hex(data)}
            )
        receipt = {
            "version": 0,
            "contractAddress": "",
            "checksumContractAddress": "",
            "gasUsed": str(20000 + 17 * i),
            "status": 0,
            "output": "0x",
            "logEntries": logs,
            "blockNumber": number,
            "message": "",
            "extraData": "",
            "transactionHash": tx["hash"],
            "to": tx["to"],
            "from": tx["from"],
        }
        receipt["hash"] = _hex(compute_receipt_hash(receipt, hasher))
        out.append(receipt)
    return out


FISCO_NUMBER = 42


def fisco_example(suite: CryptoSuite, chain_id: str) -> dict[str, Any]:
    """A 5-transaction FISCO BCOS 3.x block signed by 3 of 4 sealers (the quorum)."""
    hasher = hasher_for(suite.hash_scheme)
    contract = _derive(f"fisco-contract-{FISCO_NUMBER}")[:20].hex()
    txs = fisco_transactions(suite, chain_id, contract, 5)
    receipts = fisco_receipts(hasher, FISCO_NUMBER, contract, txs)
    return fisco_bundle(suite, chain_id, txs, receipts, index=2)


def sealer_public_key(suite: CryptoSuite, secret: bytes) -> bytes:
    """The 64-byte node id of a sealer key under ``suite``."""
    return sm2.public_key(secret) if suite is CryptoSuite.SM3_SM2 else secp256k1.public_key(secret)


def signed_fisco_block(
    suite: CryptoSuite,
    keys: Sequence[bytes],
    *,
    signers: Sequence[int],
    sealer: int,
    number: int,
    gas_used: int,
    parents: Sequence[bytes],
    txs_root: bytes,
    receipts_root: bytes,
    state_root: bytes,
) -> dict[str, Any]:
    """A FISCO BCOS 3.x header (compatibility 3.3.0) listing ``keys`` as sealers of weight 1,
    with its hash and the signatures of ``signers`` (indices into ``keys``)."""
    hasher = hasher_for(suite.hash_scheme)
    block: dict[str, Any] = {
        "version": 50528256,
        "number": number,
        "gasUsed": str(gas_used),
        "timestamp": 1764300000000,
        "sealer": sealer,
        "extraData": "0x",
        "parentInfo": [
            {"blockNumber": number - 1 - p, "blockHash": _hex(parent)}
            for p, parent in enumerate(parents)
        ],
        "txsRoot": _hex(txs_root),
        "receiptsRoot": _hex(receipts_root),
        "stateRoot": _hex(state_root),
        "sealerList": [_hex(sealer_public_key(suite, k)) for k in keys],
        "consensusWeights": [1] * len(keys),
    }
    header_hash = compute_header_hash(block, hasher)
    block["hash"] = _hex(header_hash)
    sign = sm2.sign if suite is CryptoSuite.SM3_SM2 else secp256k1.sign
    block["signatureList"] = [
        {"sealerIndex": i, "signature": _hex(sign(keys[i], header_hash))} for i in signers
    ]
    return block


def fisco_bundle(
    suite: CryptoSuite,
    chain_id: str,
    txs: list[dict[str, Any]],
    receipts: list[dict[str, Any]],
    *,
    index: int,
) -> dict[str, Any]:
    """Seal ``txs``/``receipts`` into block 42 signed by 3 of 4 sealers; bundle ``index``."""
    hasher = hasher_for(suite.hash_scheme)
    keys = [_derive(f"{chain_id}-sealer-{i}") for i in range(4)]
    pubs = [sealer_public_key(suite, k) for k in keys]
    number = FISCO_NUMBER
    leaves = [bytes.fromhex(r["hash"][2:]) for r in receipts]
    tx_leaves = [bytes.fromhex(t["hash"][2:]) for t in txs]
    block = signed_fisco_block(
        suite,
        keys,
        signers=(0, 1, 3),
        sealer=1,
        number=number,
        gas_used=sum(int(r["gasUsed"]) for r in receipts),
        parents=[_derive(f"{chain_id}-parent")],
        txs_root=compute_merkle_root(tx_leaves, hasher),
        receipts_root=compute_merkle_root(leaves, hasher),
        state_root=_derive(f"{chain_id}-state"),
    )
    return {
        "format": "interop-evidence/1",
        "family": "fisco-bcos-3",
        "chain_id": chain_id,
        "crypto": suite.value,
        "block": block,
        "receipt": receipts[index],
        "proof": compute_merkle_proof(leaves, index, hasher),
        "log_index": 0,
        "transaction": txs[index] | {"txProof": compute_merkle_proof(tx_leaves, index, hasher)},
        "trust": {
            "sealers": [{"node_id": p.hex(), "weight": 1} for p in pubs],
            "chainID": FISCO_CHAIN_ID,
            "groupID": FISCO_GROUP_ID,
            "call": {"to": txs[index]["to"], "input": txs[index]["input"]},
            "event": EVENT_ABI,
        },
    }


def build_examples() -> dict[str, dict[str, Any]]:
    return {
        "evm-receipt-with-log.json": evm_example(),
        "fisco-keccak-receipt-with-log.json": fisco_example(
            CryptoSuite.KECCAK256_SECP256K1, "fisco-demo"
        ),
        "fisco-sm-receipt-with-log.json": fisco_example(CryptoSuite.SM3_SM2, "fisco-sm-demo"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, bundle in build_examples().items():
        path = args.out / name
        path.write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
