"""Verifier benchmark: `make bench` or `python -m bench.verifier`.

Prints, from one run on this machine: µs per EVM receipt-proof verification on a ~200-receipt
block next to py-trie's ``HexaryTrie.get_from_proof`` on the very same proof (and the ratio),
µs per FISCO receipt proof, and µs per FISCO header with 4 signatures for each crypto suite.
"""

from __future__ import annotations

import platform
import sys

from bench.verifier_evm import run_evm_bench
from bench.verifier_fisco import run_fisco_bench


def main() -> int:
    sys.stdout.write(
        f"verifier benchmark: Python {platform.python_version()} on {platform.machine()}, "
        f"{platform.processor() or 'unknown CPU'}\n\n"
    )
    run_evm_bench(verbose=True)
    sys.stdout.write("\n")
    run_fisco_bench(verbose=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
