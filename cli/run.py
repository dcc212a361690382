"""``gateway run --config FILE``: run the gateway until SIGTERM or SIGINT, then drain and exit.

Exit status: 0 after a clean drain; 2 when the file (or a key it names) is unusable, with every
problem and its path; 1 when the gateway cannot start for another reason (a served chain
unreachable at start, a port taken, another gateway on the same data folder): it does not keep
retrying at start, so a wrong URL is reported at once and a supervisor decides when to try
again. docs/configuration.md (``gateway run``) describes the steps.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(sub: Any) -> None:
    """Add ``run``."""
    run = sub.add_parser(
        "run",
        help="run the gateway from its configuration until SIGTERM",
        description="Validate FILE as `gateway config validate` does (exit 2 listing every "
        "problem), load the served chains' keys, lock the data folder and check the ports "
        "are free, check every served chain answers (exit 1 naming the ones that do not), "
        "then relay and serve gRPC: RelayService for peers and the developer API on "
        "gateway.listen (mutual TLS) and the developer API with bearer "
        "tokens on api.listen. SIGTERM or SIGINT drains: in-flight calls and submissions "
        "finish, then exit 0. Logs are JSON lines on stdout (console format on a terminal).",
    )
    run.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="the gateway's gateway.toml"
    )
    run.add_argument(
        "--log-format",
        choices=("json", "console"),
        default=None,
        help="log format (default: console on a terminal, JSON otherwise)",
    )
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from relay.app import RunningGateway, StartError, run_gateway
    from relay.config import ConfigError, load_config, require_runnable
    from relay.logging import configure_logging

    try:
        config = load_config(args.config)
        require_runnable(config)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    configure_logging(None if args.log_format is None else args.log_format == "json")

    def ready(info: RunningGateway) -> None:
        api = f"; developer API with tokens on {info.api_listen}" if info.api_listen else ""
        sys.stderr.write(
            f"gateway {info.name} listening on {info.listen} (peers, mutual TLS){api}\n"
            f"  served chains: {', '.join(info.served)}\n"
            f"  remote chains: {', '.join(info.remote) or 'none'}"
            f"{' via ' + ', '.join(info.peers) if info.peers else ''}\n"
            "  stop with SIGTERM or Ctrl-C\n"
        )
        sys.stderr.flush()

    try:
        asyncio.run(run_gateway(config, ready=ready))
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except StartError as exc:
        sys.stderr.write(f"error: cannot start: {exc}\n")
        return EXIT_INVALID
    return EXIT_OK
