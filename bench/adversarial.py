"""Adversarial benchmarks: `make bench` (last part) or `python -m bench.adversarial`.

Prints the rows of :mod:`bench.adversarial_verifier` (the worst input at every verifier bound),
then those of ``bench.adversarial_devnode`` (hostile clients against the FISCO devnode), each
as ``what  figure``. The devnode part is imported only when it runs, and skipped with a note
when that module is missing.
"""

from __future__ import annotations

import importlib
import platform
import sys

from bench import adversarial_verifier

Row = tuple[str, str]


def _print_section(title: str, rows: list[Row]) -> None:
    sys.stdout.write(f"{title}\n{'-' * len(title)}\n")
    width = max((len(what) for what, _ in rows), default=0)
    for what, figure in rows:
        sys.stdout.write(f"{what:<{width}}  {figure}\n")
    sys.stdout.write("\n")


def main() -> int:
    sys.stdout.write(
        f"adversarial benchmarks: Python {platform.python_version()} on {platform.machine()}\n\n"
    )
    _print_section("Verifier: worst input at every bound", adversarial_verifier.run())
    try:
        devnode = importlib.import_module("bench.adversarial_devnode")
    except ModuleNotFoundError as exc:
        if exc.name != "bench.adversarial_devnode":
            raise
        sys.stdout.write(
            "Devnode: skipped, bench/adversarial_devnode.py is not in this checkout yet\n"
        )
        return 0
    _print_section("Devnode: hostile clients", devnode.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
