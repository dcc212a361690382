"""``gateway deploy``: the gateway contract (and the example apps) on a configured chain."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(sub: Any) -> None:
    """Add ``deploy``."""
    deploy = sub.add_parser(
        "deploy",
        help="deploy the gateway contract to a configured chain",
        description="Deploy CrossChainGateway to the chain NAME of the configuration file: "
        "the chain name and timestamp unit (seconds on EVM chains, milliseconds on FISCO BCOS) "
        "are fixed in the contract; receiver_gas and ack_gas come from the chain's section. "
        "Then register the relayer key's account (addRelayer) and every configured chain, "
        "this one included, as a destination with that chain's max_payload (setDestination). "
        "The deployer, and so the contract's owner, is owner_key if the section sets one, "
        "else relayer_key. EVM transactions are signed locally and need funds; FISCO BCOS "
        "charges no gas. Prints the addresses and a TOML snippet; --write puts the address "
        "into the file. Exit status: 0 deployed, 1 the chain failed (unreachable, no funds, "
        "reverted), 2 bad configuration or options.",
    )
    deploy.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="FILE",
        help="the gateway's TOML configuration (docs/configuration.md)",
    )
    deploy.add_argument("--chain", required=True, metavar="NAME", help="a [chains.NAME] section")
    deploy.add_argument(
        "--examples", action="store_true", help="also deploy the PingPong and Notary examples"
    )
    deploy.add_argument(
        "--write", action="store_true", help="set gateway = ... in the chain's section of FILE"
    )
    deploy.add_argument(
        "--audit-anchor",
        action="store_true",
        help="deploy only the AuditAnchor contract (docs/audit.md, anchored checkpoints); "
        "--write then sets [audit] anchor_chain and anchor_contract",
    )
    deploy.set_defaults(handler=_cmd_deploy)


def _cmd_deploy(args: argparse.Namespace) -> int:
    from adapters.deploy import DeployError
    from relay.config import ConfigError
    from relay.deploy import run_deploy, run_deploy_anchor

    try:
        if args.audit_anchor:
            run_deploy_anchor(args.config, args.chain, write=args.write, out=sys.stdout)
        else:
            run_deploy(
                args.config, args.chain, examples=args.examples, write=args.write, out=sys.stdout
            )
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except DeployError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INVALID
    return EXIT_OK
