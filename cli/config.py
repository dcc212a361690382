"""``gateway config validate FILE``: everything ``gateway run`` will refuse, found beforehand.

Exit status 0 with a one-line summary and a table of chains; 2 with every problem and its
path (the file does not load, or lacks what running needs: identity, TLS, deployed gateways,
a route). Keys are not loaded: that needs the environment the gateway runs in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli import EXIT_OK, EXIT_USAGE
from relay.config import (
    ChainConfig,
    ConfigError,
    EvmChainConfig,
    FiscoChainConfig,
    GatewayConfig,
    load_config,
    require_runnable,
)


def register(sub: Any) -> None:
    """Add ``config`` with its ``validate`` command."""
    config = sub.add_parser(
        "config",
        help="check a gateway configuration file",
        description="Work with the gateway's TOML configuration (docs/configuration.md).",
    )
    config.set_defaults(handler=lambda _args: _print_help(config))
    config_sub = config.add_subparsers(title="commands", metavar="COMMAND")
    validate = config_sub.add_parser(
        "validate",
        help="validate FILE as gateway run will",
        description="Load FILE strictly (unknown keys are errors) and check what gateway run "
        "needs beyond gateway deploy: [gateway] with name and TLS files, a chain served here "
        "with its gateway contract deployed, and at least one route. Prints every problem with "
        "its path and exits 2, or a one-line summary and a table of the chains and exits 0. "
        "Keys are not loaded (they come from the environment gateway run has).",
    )
    validate.add_argument("file", type=Path, metavar="FILE", help="the gateway.toml to check")
    validate.add_argument("--json", action="store_true", help="print the result as one JSON object")
    validate.set_defaults(handler=cmd_validate)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
        require_runnable(config)
    except ConfigError as exc:
        if args.json:
            problems = [{"path": p.path, "message": p.message} for p in exc.problems]
            _print_json({"valid": False, "file": str(args.file), "problems": problems})
        else:
            sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    if args.json:
        _print_json(summary_json(config))
    else:
        sys.stdout.write(summary_line(config) + "\n")
        _print_table(config)
    return EXIT_OK


def summary_line(config: GatewayConfig) -> str:
    """``OK FILE: gateway NAME on LISTEN; served: ...; remote: ...; peers: ...; N routes``."""
    assert config.gateway is not None  # require_runnable passed
    peers = ", ".join(f"{p.name} ({p.address})" for p in config.peers.values()) or "none"
    routes = len(config.routes)
    return (
        f"OK {config.path}: gateway {config.gateway.name} on {config.gateway.listen}; "
        f"served: {', '.join(config.served_chains)}; "
        f"remote: {', '.join(config.remote_chains) or 'none'}; peers: {peers}; "
        f"{routes} route{'s' if routes != 1 else ''}"
    )


def summary_json(config: GatewayConfig) -> dict[str, Any]:
    assert config.gateway is not None
    return {
        "valid": True,
        "file": str(config.path),
        "gateway": config.gateway.name,
        "listen": config.gateway.listen,
        "data_dir": str(config.gateway.data_dir),
        "served_chains": list(config.served_chains),
        "remote_chains": list(config.remote_chains),
        "peers": {
            p.name: {"address": p.address, "chains": list(p.chains), "cert_sha256": p.cert_sha256}
            for p in config.peers.values()
        },
        "routes": [{"from": r.source, "to": r.destination} for r in config.routes],
        "api": {"tokens": len(config.api.tokens), "client_certs": len(config.api.client_certs)},
    }


def _print_table(config: GatewayConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="chains", title_justify="left")
    for column in ("chain", "family", "role", "trust root", "gateway contract"):
        table.add_column(column, no_wrap=column in ("chain", "gateway contract"))
    for name, chain in config.chains.items():
        peer = config.peer_for_chain(name)
        role = "served here" if chain.served else f"remote, via {peer.name if peer else '?'}"
        gateway = "0x" + chain.gateway.hex() if chain.gateway else "-"
        table.add_row(name, chain.family, role, _trust(chain), gateway)
    routes = Table(title="routes", title_justify="left")
    routes.add_column("from")
    routes.add_column("to")
    for route in config.routes:
        routes.add_row(route.source, route.destination)
    console = Console(file=sys.stdout)
    if not console.is_terminal:  # piped: one row per line, for grep, not wrapped at 80
        console = Console(file=sys.stdout, width=200)
    console.print(table)
    console.print(routes)


def _trust(chain: ChainConfig) -> str:
    if isinstance(chain, EvmChainConfig):
        final = f"{chain.confirmations} confirmations" if chain.confirmations else chain.finality
        if len(chain.endpoints) == 1:
            return f"its one endpoint trusted alone, {final}"
        return f"{chain.quorum} of {len(chain.endpoints)} endpoints agree, {final}"
    if isinstance(chain, FiscoChainConfig):
        weight = sum(s.weight for s in chain.sealers)
        return f"{len(chain.sealers)} sealers (weight {weight}), {chain.crypto.value}"
    return "-"


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, sort_keys=True) + "\n")
