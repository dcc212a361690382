"""FISCO BCOS 3.x verifier benchmark: `python -m bench.verifier_fisco`.

Self-contained (no ../shared needed): synthetic blocks built with the verifier's own codecs.

- ``receipt_proof_200_us``: µs to recompute a receipt's hash from its JSON and verify its proof
  in a 200-receipt block (8 levels); ``receipt_proof_707_us`` the same at 707 receipts
  (10 levels, the depth of the WeCross block 60 vector).
- ``header_<suite>_us``: µs to recompute a header hash from its JSON and check 4 signatures and
  the weighted quorum, for keccak256-secp256k1 and sm3-sm2.

Each figure is the best of 5 repeats of a timed loop (minimum = least disturbed run).
"""

from __future__ import annotations

import functools
import hashlib
import sys
import timeit
from collections.abc import Callable
from typing import Any

from verifier.fisco.header import compute_header_hash, parse_header
from verifier.fisco.receipt import compute_receipt_hash
from verifier.hashing import CryptoSuite, Hasher, hasher_for, keccak256
from verifier.merkle.fisco import compute_merkle_proof, compute_merkle_root, verify_merkle_proof
from verifier.signatures import secp256k1, sm2
from verifier.signatures.quorum import verify_signature_list

_REPEATS = 5


def _receipt_json(i: int) -> dict[str, Any]:
    return {
        "version": 0,
        "gasUsed": str(21_000 + i),
        "contractAddress": "",
        "status": 0,
        "output": "0x" + f"{i:064x}",
        "logEntries": [
            {
                "address": "0102e8b6fc8cdf9626fddc1c3ea8c1e79b3fce94",
                "topics": ["0x" + keccak256(b"Sent(uint256)").hex(), "0x" + f"{i:064x}"],
                "data": "0x" + "00" * 64,
            }
        ],
        "blockNumber": 42,
    }


def _receipt_case(count: int) -> tuple[dict[str, Any], list[str], bytes]:
    receipts = [_receipt_json(i) for i in range(count)]
    leaves = [compute_receipt_hash(r, keccak256) for r in receipts]
    index = count // 2
    return (
        receipts[index],
        compute_merkle_proof(leaves, index, keccak256),
        compute_merkle_root(leaves, keccak256),
    )


def _header_case(suite: CryptoSuite) -> tuple[dict[str, Any], dict[bytes, int], Hasher]:
    hasher = hasher_for(suite.hash_scheme)
    secrets = [hashlib.sha256(f"bench-{suite}-{i}".encode()).digest() for i in range(4)]
    signer = sm2 if suite is CryptoSuite.SM3_SM2 else secp256k1
    keys = [signer.public_key(s) for s in secrets]
    block: dict[str, Any] = {
        "version": 0x03030000,
        "parentInfo": [{"blockNumber": 41, "blockHash": "0x" + "11" * 32}],
        "txsRoot": "0x" + "22" * 32,
        "receiptsRoot": "0x" + "33" * 32,
        "stateRoot": "0x" + "44" * 32,
        "number": 42,
        "gasUsed": "4166351",
        "timestamp": 1_700_000_000_000,
        "sealer": 1,
        "sealerList": ["0x" + k.hex() for k in keys],
        "extraData": "0x",
        "consensusWeights": [1, 1, 1, 1],
    }
    digest = compute_header_hash(block, hasher)
    block["hash"] = "0x" + digest.hex()
    block["signatureList"] = [
        {"sealerIndex": i, "signature": "0x" + signer.sign(s, digest).hex()}
        for i, s in enumerate(secrets)
    ]
    return block, dict.fromkeys(keys, 1), hasher


def _verify_receipt(receipt: dict[str, Any], proof: list[str], root: bytes) -> None:
    leaf = compute_receipt_hash(receipt, keccak256)
    verify_merkle_proof(proof, leaf, root, keccak256, check="receipt_proof")


def _verify_header(
    block: dict[str, Any], trusted: dict[bytes, int], hasher: Hasher, suite: CryptoSuite
) -> None:
    header = parse_header(block, hasher)
    verify_signature_list(header.hash, header.sealer_list, header.signatures, trusted, suite)


def _best_us(func: Callable[[], None], number: int) -> float:
    func()  # warm up, and fail loudly before timing if the case does not verify
    return min(timeit.repeat(func, number=number, repeat=_REPEATS)) / number * 1e6


def run_fisco_bench(*, verbose: bool = False) -> dict[str, float]:
    """Run the FISCO benchmarks; return (and with ``verbose`` print) µs per operation."""
    results: dict[str, float] = {}
    for count in (200, 707):
        receipt, proof, root = _receipt_case(count)
        check = functools.partial(_verify_receipt, receipt, proof, root)
        results[f"receipt_proof_{count}_us"] = _best_us(check, 2000)
    for suite in CryptoSuite:
        block, trusted, hasher = _header_case(suite)
        check = functools.partial(_verify_header, block, trusted, hasher, suite)
        number = 100 if suite is CryptoSuite.SM3_SM2 else 500
        results[f"header_{suite.value}_us"] = _best_us(check, number)
    if verbose:
        _report(results)
    return results


def _report(results: dict[str, float]) -> None:
    lines = ["FISCO BCOS 3.x verifier (best of 5)"]
    for count, levels in ((200, 8), (707, 10)):
        value = results[f"receipt_proof_{count}_us"]
        label = f"receipt hash + proof, {count} receipts ({levels} levels)"
        lines.append(f"  {label:<52} {value:8.1f} µs")
    for suite in CryptoSuite:
        value = results[f"header_{suite.value}_us"]
        label = f"header hash + 4 sigs + quorum, {suite.value}"
        lines.append(f"  {label:<52} {value:8.1f} µs")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    run_fisco_bench(verbose=True)
