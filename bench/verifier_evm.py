"""EVM receipt-proof benchmark: `python -m bench.verifier_evm`.

The block is mainnet 14,194,126 (197 receipts, ``../shared/vectors/evm/
mainnet_14194126_london_receipts.json``), the benchmark block of ``specs/ethereum.md`` 1.6:
every receipt is re-encoded, the trie is built with ``verifier.merkle.mpt`` (its root must be
the header's ``receiptsRoot``) and the proof of index 100 taken in the geth wire format. Without
the vector file a synthetic 200-receipt block built the same way is used, and the report says so.

On that one proof, µs per verification (best of 5 repeats of a timed loop):

- ``ours_mpt_us``: ``verify_mpt_proof`` from wire bytes to the proven value
- ``ours_receipt_proof_us``: the whole ``verify_receipt_proof`` (hex parsing, re-encoding the
  JSON receipt, the proof, comparing and decoding the value), what the relay calls
- ``pytrie_wire_us``: py-trie ``HexaryTrie.get_from_proof`` from the same wire bytes, i.e.
  including ``rlp.decode`` of each node; ``pytrie_decoded_us``: with pre-decoded nodes
- the same two with ``_pysha3`` appended: py-trie with eth-hash's pysha3 backend, the keccak
  implementation ours uses (py-trie's default backend here is whatever eth-hash picks:
  pycryptodome when installed)
- ``ratio`` = ``pytrie_wire_us / ours_mpt_us`` and ``ratio_pysha3`` likewise.
"""

from __future__ import annotations

import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import eth_hash.auto
import rlp as pyrlp
from eth_hash.backends import pysha3 as eth_hash_pysha3
from trie.hexary import HexaryTrie

from verifier.evm.receipt import encode_receipt, receipt_key, verify_receipt_proof
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root, verify_mpt_proof

VECTOR = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "vectors"
    / "evm"
    / "mainnet_14194126_london_receipts.json"
)
INDEX = 100
_REPEATS = 5


def _load_block() -> tuple[str, list[dict[str, Any]], bytes | None]:
    """(label, receipts, header receiptsRoot or None) from the vector, else a synthetic block."""
    if VECTOR.is_file():
        v = json.loads(VECTOR.read_text(encoding="utf-8"))
        root = bytes.fromhex(v["header"]["receiptsRoot"][2:])
        return f"mainnet block 14194126 ({len(v['receipts'])} receipts)", v["receipts"], root
    sys.stdout.write(f"vector file not found: {VECTOR}\n  -> using a synthetic 200-receipt block\n")
    return "synthetic block (200 receipts)", [_synthetic_receipt(i) for i in range(200)], None


def _synthetic_receipt(i: int) -> dict[str, Any]:
    logs = [
        {
            "address": "0x" + f"{i * 7 + j:040x}",
            "topics": ["0x" + f"{i * 31 + j + t:064x}" for t in range(3)],
            "data": "0x" + f"{i:064x}" * (1 + j),
        }
        for j in range(i % 3)
    ]
    return {
        "type": "0x2" if i % 4 else "0x0",
        "status": "0x1" if i % 9 else "0x0",
        "cumulativeGasUsed": hex(21_000 * (i + 1) + i * 517),
        "logsBloom": "0x" + f"{i:02x}" * 256,
        "logs": logs,
        "transactionIndex": hex(i),
    }


def _best_us(func: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(func, number=number, repeat=_REPEATS)) / number * 1e6


def run_evm_bench(*, verbose: bool = False) -> dict[str, float]:
    """Run the EVM benchmark; return (and with ``verbose`` print) µs per verification."""
    label, receipts, header_root = _load_block()
    items = {receipt_key(int(r["transactionIndex"], 16)): encode_receipt(r) for r in receipts}
    root = compute_mpt_root(items)
    if header_root is not None and root != header_root:
        raise RuntimeError("the rebuilt receipts root is not the header's receiptsRoot")
    key = receipt_key(INDEX)
    proof = compute_mpt_proof(items, key)
    proof_hex = ["0x" + node.hex() for node in proof]
    receipt = receipts[INDEX]
    decoded = [pyrlp.decode(node) for node in proof]

    def ours() -> bytes:
        return verify_mpt_proof(root, key, proof, check="receipt_proof")

    def pytrie_wire() -> bytes:
        nodes = [pyrlp.decode(node) for node in proof]
        return bytes(HexaryTrie.get_from_proof(root, key, nodes))  # type: ignore[no-untyped-call]

    def pytrie_decoded() -> bytes:
        return bytes(HexaryTrie.get_from_proof(root, key, decoded))  # type: ignore[no-untyped-call]

    if not ours() == pytrie_wire() == pytrie_decoded() == items[key]:
        raise RuntimeError("the verifiers disagree on the proven value")
    verify_receipt_proof(root, receipt, proof_hex)
    results = {
        "ours_mpt_us": _best_us(ours, 10_000),
        "ours_receipt_proof_us": _best_us(
            lambda: verify_receipt_proof(root, receipt, proof_hex), 2000
        ),
        "pytrie_wire_us": _best_us(pytrie_wire, 2000),
        "pytrie_decoded_us": _best_us(pytrie_decoded, 2000),
    }
    keccak = eth_hash.auto.keccak
    default_hasher = keccak.hasher
    keccak.hasher = cast(Any, eth_hash_pysha3.keccak256)  # the same keccak as ours
    try:
        results["pytrie_wire_pysha3_us"] = _best_us(pytrie_wire, 2000)
        results["pytrie_decoded_pysha3_us"] = _best_us(pytrie_decoded, 2000)
    finally:
        keccak.hasher = default_hasher
    results["ratio"] = results["pytrie_wire_us"] / results["ours_mpt_us"]
    results["ratio_pysha3"] = results["pytrie_wire_pysha3_us"] / results["ours_mpt_us"]
    results["proof_nodes"] = float(len(proof))
    if verbose:
        _report(label, [len(node) for node in proof], len(items[key]), results)
    return results


def _report(label: str, sizes: list[int], value_size: int, results: dict[str, float]) -> None:
    rows = [
        ("ours: verify_mpt_proof (wire format)", "ours_mpt_us"),
        ("ours: verify_receipt_proof (JSON receipt + hex proof)", "ours_receipt_proof_us"),
        ("py-trie get_from_proof, wire format (rlp.decode first)", "pytrie_wire_us"),
        ("py-trie get_from_proof, decoded nodes", "pytrie_decoded_us"),
        ("py-trie wire format, eth-hash pysha3 backend", "pytrie_wire_pysha3_us"),
        ("py-trie decoded nodes, eth-hash pysha3 backend", "pytrie_decoded_pysha3_us"),
    ]
    lines = [
        f"EVM receipt proof, {label}, index {INDEX} (best of {_REPEATS})",
        f"  proof: {len(sizes)} nodes of {'/'.join(map(str, sizes))} bytes; "
        f"value {value_size} bytes",
    ]
    lines += [f"  {text:<58} {results[key]:8.1f} µs" for text, key in rows]
    lines.append(
        f"  ratio py-trie (wire) / ours: {results['ratio']:.1f}x "
        f"(with the same keccak backend: {results['ratio_pysha3']:.1f}x)"
    )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    run_evm_bench(verbose=True)
