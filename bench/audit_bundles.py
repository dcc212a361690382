"""Real evidence bundles for ``bench.audit``, read from ``../shared/vectors`` at run time (never
copied into the repository).

EVM: every ERC-20 ``Transfer`` log of a successful receipt in four mainnet blocks is one bundle
(the block header, the receipt, the receipt's proof built with ``verifier.merkle.mpt`` from the
block's receipts and checked against the header's ``receiptsRoot``, and ``log_index``), relied on
under ``{"block_hash", "event"}``, the shape ``relay.verify._relied_trust`` records for an EVM
verification (the gateway's event is ``MessageSent``; here it is ``Transfer``, the event these
real logs carry). FISCO BCOS: WeCross block 60 (keccak256 + secp256k1, 4 sealers) and the SM3 +
SM2 doc chain's block 2 (3 sealers), relied on under their sealer sets. The trust summaries
(endpoint names, finality) are shaped like ``relay.trust``'s and otherwise invented.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from relay.audit import Reliance, evidence_digest
from verifier.errors import VerificationError
from verifier.evidence import verify_bundle
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.hashing import keccak256
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root

VECTORS: Final = Path(__file__).resolve().parents[2] / "shared" / "vectors"
EVM_BLOCKS: Final = (
    "evm/mainnet_14194126_london_receipts.json",
    "evm/mainnet_19432087_cancun_blob_receipts.json",
    "evm/mainnet_21925176_cancun_receipts_helios.json",
    "evm/mainnet_19432673_cancun_small_block.json",
)
TRANSFER_EVENT: Final = {
    "type": "event",
    "name": "Transfer",
    "anonymous": False,
    "inputs": [
        {"name": "from", "type": "address", "indexed": True},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
    ],
}
TRANSFER_TOPIC: Final = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
SRC_CHAIN: Final = "eth-mainnet"
DST_CHAIN: Final = "fisco-wecross"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A real bundle, as an endpoint served it, and what the gateway recorded relying on."""

    bundle: dict[str, Any]
    relied: Reliance


# ---------------------------------------------------------------------------------------------
# Real bundles from ../shared/vectors


def _evm_bundles(limit: int) -> Iterator[Evidence]:
    for rel in EVM_BLOCKS:
        path = VECTORS / rel
        if not path.is_file():
            print(f"  vector file not found: {path} (skipped)")
            continue
        v = json.loads(path.read_text(encoding="utf-8"))
        header, receipts = v["header"], v["receipts"]
        items = {receipt_key(int(r["transactionIndex"], 16)): encode_receipt(r) for r in receipts}
        if "0x" + compute_mpt_root(items).hex() != header["receiptsRoot"]:
            raise RuntimeError(f"{path}: the rebuilt receipts root is not the header's")
        for r in receipts:
            logs = [i for i, log in enumerate(r["logs"]) if _is_transfer(log)]
            if r.get("status") != "0x1" or not logs:
                continue
            key = receipt_key(int(r["transactionIndex"], 16))
            proof = ["0x" + node.hex() for node in compute_mpt_proof(items, key)]
            for index in logs:
                if limit <= 0:
                    return
                limit -= 1
                yield _evm_evidence(header, r, proof, index)


def _is_transfer(log: dict[str, Any]) -> bool:
    topics = log["topics"]
    return len(topics) == 3 and topics[0] == TRANSFER_TOPIC and len(log["data"]) == 66


def _evm_evidence(
    header: dict[str, Any], receipt: dict[str, Any], proof: list[str], index: int
) -> Evidence:
    height = int(header["number"], 16)
    bundle = {
        "format": "interop-evidence/1",
        "family": "evm",
        "chain_id": SRC_CHAIN,
        "crypto": "keccak256-secp256k1",
        "block": header,
        "receipt": receipt,
        "proof": proof,
        "log_index": index,
        "trust": {"block_hash": header["hash"]},
    }
    # relay.verify._relied_trust (EVM): the block hash the endpoints agreed on, and the event.
    trust = {"block_hash": header["hash"], "event": copy.deepcopy(TRANSFER_EVENT)}
    summary = {  # relay.trust's EVM summary; endpoint names and finality invented
        "family": "evm",
        "source": "endpoints",
        "chain_id": 1,
        "gateway": receipt["logs"][index]["address"],
        "height": height,
        "block_hash": header["hash"],
        "quorum": 2,
        "of": 3,
        "agreed": ["rpc-a", "rpc-b"],
        "final_head": height + 64,
        "finality": "finalized",
        "dissent": {},
    }
    return Evidence(bundle, Reliance(evidence_digest(bundle), trust, summary))


def _fisco_bundles() -> Iterator[Evidence]:
    cases = (
        ("fisco/wecross_bcos3_vectors.json", None, "block", "receipt", "keccak256-secp256k1"),
        (
            "fisco/fisco_doc_examples.json",
            "sm_chain",
            "block2_header",
            "deploy_receipt_block2",
            "sm3-sm2",
        ),
    )
    for rel, part, block_key, receipt_key_, crypto in cases:
        path = VECTORS / rel
        if not path.is_file():
            print(f"  vector file not found: {path} (skipped)")
            continue
        v = json.loads(path.read_text(encoding="utf-8"))
        if part is not None:
            v = v[part]
        block, receipt = v[block_key], v[receipt_key_]
        sealers = [{"node_id": pk.removeprefix("0x"), "weight": 1} for pk in block["sealerList"]]
        bundle = {
            "format": "interop-evidence/1",
            "family": "fisco-bcos-3",
            "chain_id": DST_CHAIN,
            "crypto": crypto,
            "block": block,
            "receipt": receipt,
            "proof": receipt["txReceiptProof"],
            "trust": {"sealers": sealers},
        }
        trust = {"sealers": sealers}
        summary = {  # relay.trust.fisco_root's summary shape
            "family": "fisco-bcos-3",
            "source": "configuration",
            "chain_id": "chain0",
            "group_id": "group0",
            "sealers": len(sealers),
            "total_weight": len(sealers),
        }
        yield Evidence(bundle, Reliance(evidence_digest(bundle), trust, summary))


def load_evidence(evm_limit: int) -> tuple[list[Evidence], list[Evidence], int]:
    """(EVM bundles, FISCO bundles, bundles dropped because they did not verify)."""
    if not VECTORS.is_dir():
        print(f"  {VECTORS} not found: records without evidence bundles only")
        return [], [], 0
    dropped = 0
    pools: tuple[list[Evidence], list[Evidence]] = ([], [])
    for pool, source in zip(pools, (_evm_bundles(evm_limit), _fisco_bundles()), strict=True):
        for ev in source:
            assert ev.relied.trust is not None
            try:
                verify_bundle({**ev.bundle, "trust": ev.relied.trust})
            except VerificationError as exc:
                dropped += 1
                print(f"  bundle dropped: [{exc.check}] {exc.reason}")
                continue
            pool.append(ev)
    return pools[0], pools[1], dropped
