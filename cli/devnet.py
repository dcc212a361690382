"""``gateway devnet fisco`` (the FISCO BCOS 3.x devnode) and ``gateway devnet evm`` (Anvil)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, TextIO

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(sub: Any) -> None:
    """Add ``devnet`` with its ``fisco`` and ``evm`` chains."""
    devnet = sub.add_parser(
        "devnet", help="run a local development chain", description="Local development chains."
    )
    devnet.set_defaults(handler=lambda _args: _print_help(devnet))
    devnet_sub = devnet.add_subparsers(title="chains", metavar="CHAIN")
    fisco = devnet_sub.add_parser(
        "fisco",
        help="FISCO BCOS 3.x devnode (JSON-RPC over HTTP)",
        description="A single-process FISCO BCOS 3.x compatible chain speaking the real "
        "JSON-RPC, with deterministic sealer keys. Stops on Ctrl-C / SIGTERM.",
    )
    _add_devnet_fisco_arguments(fisco)
    evm = devnet_sub.add_parser(
        "evm",
        help="Anvil, the local Ethereum-compatible chain",
        description="Start the project's pinned Anvil (make setup installs it), print its URL, "
        "chain id and funded dev accounts with their private keys (Anvil's public test keys: "
        "never use them on a real chain), and run until Ctrl-C / SIGTERM.",
    )
    evm.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    evm.add_argument("--port", type=int, default=8545, help="RPC port (default 8545; 0: any)")
    evm.add_argument("--chain-id", type=int, default=31337, help="chain id (default 31337)")
    evm.add_argument(
        "--block-time",
        type=float,
        default=None,
        metavar="S",
        help="mine a block every S seconds (default: one block per transaction, none idle)",
    )
    evm.add_argument("--accounts", type=int, default=10, help="funded dev accounts (default 10)")
    evm.set_defaults(handler=_cmd_devnet_evm)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _add_devnet_fisco_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from devnet.fisco.cli import add_arguments
    except ImportError:  # the devnet extra is not installed
        parser.set_defaults(handler=_devnet_missing)
        return
    add_arguments(parser)
    parser.set_defaults(handler=_cmd_devnet_fisco)


def _devnet_missing(_args: argparse.Namespace) -> int:
    sys.stderr.write("error: the devnode needs the devnet extra: pip install -e '.[devnet]'\n")
    return EXIT_USAGE


def _cmd_devnet_fisco(args: argparse.Namespace) -> int:
    from devnet.fisco.cli import run

    return run(args)


def _cmd_devnet_evm(args: argparse.Namespace) -> int:
    from devnet.anvil import AnvilError, start_anvil

    if not 0 <= args.port <= 65535 or not 1 <= args.accounts <= 1000 or args.chain_id < 1:
        sys.stderr.write("error: --port 0..65535, --accounts 1..1000, --chain-id >= 1\n")
        return EXIT_USAGE
    if args.block_time is not None and not args.block_time > 0:
        sys.stderr.write("error: --block-time must be > 0\n")
        return EXIT_USAGE
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _sig, _frame: stop.set())
    out = sys.stdout
    out.write("starting Anvil...\n")
    out.flush()
    try:
        anvil = start_anvil(
            host=args.host,
            port=args.port,
            chain_id=args.chain_id,
            block_time=args.block_time,
            accounts=args.accounts,
        )
    except AnvilError as exc:
        sys.stderr.write(f"error: {_first_line(str(exc))}\n")
        return EXIT_USAGE
    try:
        _print_anvil(out, anvil, args.block_time)
        while not stop.wait(0.2):
            if anvil.process.poll() is not None:
                sys.stderr.write(f"error: Anvil exited with status {anvil.process.returncode}\n")
                return EXIT_INVALID
    finally:
        anvil.stop()
        if anvil.process.stdout is not None:
            anvil.process.stdout.close()
    out.write("Anvil stopped\n")
    return EXIT_OK


def _print_anvil(out: TextIO, anvil: Any, block_time: float | None) -> None:
    mining = f"a block every {block_time} s" if block_time else "one block per transaction"
    out.write(f"Anvil (Ethereum-compatible devnet) listening on {anvil.url}\n")
    out.write(f"chain id: {anvil.chain_id}\n")
    out.write(f"mining: {mining}\n")
    out.write(
        "dev accounts, 10000 ETH each (Anvil's PUBLIC test keys: anyone can spend on a chain "
        "that accepts them; never use them on a real chain):\n"
    )
    from web3 import Web3

    for index, account in enumerate(anvil.accounts):
        address = Web3.to_checksum_address(account.address)
        out.write(f"  account {index}: {address}  private key {account.private_key}\n")
    out.write(
        'for a config section: family = "evm", '
        f'endpoints = ["{anvil.url}"], chain_id = {anvil.chain_id}, confirmations = 1, '
        'relayer_key = { env = "RELAYER_KEY" } with RELAYER_KEY set to a key above\n'
        "Ctrl-C stops it\n"
    )
    out.flush()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"
