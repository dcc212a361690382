"""The ``gateway`` command: entry point and composition root of the cross-chain gateway.

Each command group lives in its own module under ``cli/`` and adds itself to the parser with
``register(subparsers)``; this module only assembles them and runs the chosen handler, which
returns the exit status (0 done, 1 the subject failed, 2 unusable input). ``gateway --help``
lists every command with one line; ``gateway COMMAND --help`` explains its options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from cli import api as api_cmd
from cli import audit as audit_cmd
from cli import config as config_cmd
from cli import db as db_cmd
from cli import demo as demo_cmd
from cli import deploy as deploy_cmd
from cli import devnet as devnet_cmd
from cli import init as init_cmd
from cli import run as run_cmd
from cli import verify as verify_cmd

__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "main"]

COMMAND_GROUPS: tuple[Callable[[Any], None], ...] = (
    verify_cmd.register,  # verify
    demo_cmd.register,  # demo
    init_cmd.register,  # init
    config_cmd.register,  # config validate
    devnet_cmd.register,  # devnet fisco, devnet evm
    deploy_cmd.register,  # deploy
    run_cmd.register,  # run
    db_cmd.register,  # db migrate, db status
    api_cmd.register,  # send, status, watch, messages
    audit_cmd.register,  # audit verify
)
"""In the order ``gateway --help`` lists them."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = handler(args)
    except KeyboardInterrupt:
        return 130
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Cross-chain interoperability gateway for FISCO BCOS 3.x and "
        "Ethereum-compatible chains. Acts on a message only when its evidence verifies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(sub)
    return parser


def _version() -> str:
    try:
        return metadata.version("interop-gateway")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
