"""``gateway devnet fisco``: run the devnode until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from devnet.fisco.errors import RpcError

if TYPE_CHECKING:  # the node pulls in py-evm, which takes a second to import: only on `run`
    from devnet.fisco.node import DevNodeOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=20200, help="RPC port (default 20200)")
    parser.add_argument("--sealers", type=int, default=4, help="consensus nodes (default 4)")
    parser.add_argument(
        "--block-interval-ms", type=int, default=500, help="sealing interval (default 500)"
    )
    parser.add_argument("--seed", default="devnode", help="seed of the sealer keys")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the chain here")
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--tx-gas-limit",
        type=int,
        default=30_000_000,
        help="gas per transaction and call (default 30,000,000: up to ~10 s of py-evm; "
        "a real node's is 3,000,000,000)",
    )
    limits.add_argument(
        "--block-time-limit-ms",
        type=int,
        default=10_000,
        help="wall-clock cap on executing one block or one call (default 10000)",
    )
    limits.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="open HTTP connections (default 256, lowered to fit the file limit)",
    )
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=16 * 1024 * 1024,
        help="request body size (default 16 MiB; a real node's is 100 MiB)",
    )
    limits.add_argument(
        "--idle-timeout-s",
        type=float,
        default=15.0,
        help="close a connection idle this long (default 15)",
    )


async def _serve(options: DevNodeOptions) -> int:
    from devnet.fisco.node import DevNode

    node = DevNode(options)
    try:
        await node.start()
    except OSError as exc:
        await node.stop()
        reason = "port in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        print(f"error: cannot listen on {options.host}:{options.port}: {reason}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"FISCO BCOS devnode listening on {node.url}")
    print(f"chain id: {node.chain_id}")
    print(f"group id: {node.group_id}")
    for index, key in enumerate(node.sealer_keys):
        print(f"sealer {index}: {key.node_id}")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await node.stop()
    return 0


def _usage_error(args: argparse.Namespace) -> str | None:
    if args.sealers < 1 or args.block_interval_ms < 1 or not 0 <= args.port <= 65535:
        return "--sealers and --block-interval-ms must be >= 1, --port 0..65535"
    if min(args.tx_gas_limit, args.block_time_limit_ms, args.max_connections) < 1:
        return "--tx-gas-limit, --block-time-limit-ms and --max-connections must be >= 1"
    if args.max_body_bytes < 1 or args.idle_timeout_s <= 0:
        return "--max-body-bytes must be >= 1 and --idle-timeout-s > 0"
    return None


def run(args: argparse.Namespace) -> int:
    error = _usage_error(args)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from devnet.fisco.node import DevNodeOptions
    from devnet.fisco.server import HttpLimits

    options = DevNodeOptions(
        host=args.host,
        port=args.port,
        sealers=args.sealers,
        block_interval_ms=args.block_interval_ms,
        seed=args.seed,
        data_dir=args.data_dir,
        tx_gas_limit=args.tx_gas_limit,
        block_time_limit_s=args.block_time_limit_ms / 1000,
        http=HttpLimits(
            max_connections=args.max_connections,
            max_body_bytes=args.max_body_bytes,
            idle_timeout_s=args.idle_timeout_s,
        ),
    )
    try:
        return asyncio.run(_serve(options))
    except RpcError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


def main() -> int:
    parser = argparse.ArgumentParser(prog="devnet-fisco", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
