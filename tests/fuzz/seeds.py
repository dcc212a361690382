"""Seed inputs for the fuzzer: the shipped examples and bundles built by ``tests.fuzz.bundles``.

python -m tests.fuzz.seeds OUT_DIR     # write them, one file each, to look at or reuse
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.fuzz.bundles import dumps, evm_bundle, evm_log, fisco_bundle, fisco_log
from verifier.hashing import CryptoSuite

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def seed_bundles() -> Iterator[bytes]:
    """Valid bundles of every shape the verifier knows, and a few near-misses."""
    for path in sorted(EXAMPLES.glob("*.json")):
        raw = path.read_bytes()
        yield raw
        yield dumps(json.loads(raw))
    yield dumps(evm_bundle([]))
    yield dumps(evm_bundle([evm_log(0, topics=0, data=0, rpc_fields=False)], log_index=0))
    yield dumps(evm_bundle([evm_log(i, topics=i % 5, data=33 * i) for i in range(4)], log_index=3))
    for suite in CryptoSuite:
        yield dumps(fisco_bundle(suite))
        yield dumps(fisco_bundle(suite, [fisco_log(i, topics=i % 5) for i in range(3)]))
        yield dumps(fisco_bundle(suite, [fisco_log(0, data=0)], sealers=7, signers=[6, 0, 3, 4, 5]))
    yield dumps(fisco_bundle(CryptoSuite.KECCAK256_SECP256K1, sealers=1, parents=0))
    yield b"[" * 64 + b"]" * 64
    yield b'{"format":"interop-evidence/1","family":"evm"}'


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m tests.fuzz.seeds OUT_DIR\n")
        return 2
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for raw in seed_bundles():
        (out / hashlib.sha1(raw).hexdigest()).write_bytes(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
