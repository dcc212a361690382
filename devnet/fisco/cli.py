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


def run(args: argparse.Namespace) -> int:
    if args.sealers < 1 or args.block_interval_ms < 1 or not 0 <= args.port <= 65535:
        print(
            "error: --sealers and --block-interval-ms must be >= 1, --port 0..65535",
            file=sys.stderr,
        )
        return 2
    from devnet.fisco.node import DevNodeOptions

    options = DevNodeOptions(
        host=args.host,
        port=args.port,
        sealers=args.sealers,
        block_interval_ms=args.block_interval_ms,
        seed=args.seed,
        data_dir=args.data_dir,
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
