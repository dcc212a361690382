"""The ``gateway`` command: CLI and composition root of the cross-chain gateway.

Subcommands:
  verify BUNDLE     check an evidence bundle (docs/evidence-format.md); exit 0 valid, 1 invalid,
                    2 unreadable or not a bundle
  demo              the main job on the embedded default (for now: verify the shipped examples)
  devnet fisco      run the local FISCO BCOS 3.x devnode
  devnet evm        run Anvil, the local Ethereum-compatible chain, and print its dev accounts
  deploy            deploy the gateway contract (and the examples) to a configured chain
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final, TextIO

from verifier.encoding import load_json
from verifier.errors import MalformedEvidence, VerificationError
from verifier.evidence import BundleFormatError, verify_bundle
from verifier.limits import MAX_BUNDLE_BYTES
from verifier.types import VerifiedEvidence

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_USAGE: Final = 2
EXAMPLES_DIR: Final = Path(__file__).resolve().parent / "docs" / "examples"


class BundleReadError(Exception):
    """The bundle file could not be read or is not JSON."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
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


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Cross-chain interoperability gateway for FISCO BCOS 3.x and "
        "Ethereum-compatible chains. Acts on a message only when its evidence verifies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    verify = sub.add_parser(
        "verify",
        help="verify an evidence bundle",
        description="Verify an evidence bundle (format: docs/evidence-format.md): the block "
        "header against the trust root, the receipt against the header, and, on FISCO, the "
        "PBFT signature quorum. A log counts only from a successful receipt; on FISCO only "
        "from the exact call pinned in the bundle's trust section, and decoded strictly "
        "against the trusted event ABI. Exit status: 0 valid, 1 invalid (one line names the "
        "failed check), 2 unreadable or not an evidence bundle.",
    )
    verify.add_argument("bundle", metavar="BUNDLE.json", help="bundle file, or - for stdin")
    verify.add_argument("--json", action="store_true", help="print the result as one JSON object")
    verify.set_defaults(handler=_cmd_verify)

    demo = sub.add_parser(
        "demo",
        help="run the demo on the embedded default",
        description="Verify the example evidence bundles shipped in docs/examples/ and show "
        "that a tampered copy of each is rejected.",
    )
    demo.add_argument("--examples", type=Path, default=EXAMPLES_DIR, help="folder of bundles")
    demo.set_defaults(handler=_cmd_demo)

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
    _add_deploy_parser(sub)
    return parser


def _version() -> str:
    try:
        return metadata.version("interop-gateway")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


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
        f'endpoints = ["{anvil.url}"], chain_id = {anvil.chain_id}, '
        'relayer_key = { env = "RELAYER_KEY" } with RELAYER_KEY set to a key above\n'
        "Ctrl-C stops it\n"
    )
    out.flush()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def _add_deploy_parser(sub: Any) -> None:
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
    deploy.set_defaults(handler=_cmd_deploy)


def _cmd_deploy(args: argparse.Namespace) -> int:
    from adapters.deploy import DeployError
    from relay.config import ConfigError
    from relay.deploy import run_deploy

    try:
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


def _cmd_verify(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        document = _read_bundle(args.bundle)
    except BundleReadError as exc:
        return _report_unusable(out, args.json, str(exc))
    try:
        evidence = verify_bundle(document)
    except BundleFormatError as exc:
        return _report_unusable(out, args.json, f"not an evidence bundle: {exc}")
    except VerificationError as exc:
        family = document.get("family") if isinstance(document, dict) else None
        if args.json:
            _print_json(out, _failure_json(family, exc))
        else:
            out.write(f"INVALID [{exc.check}] {exc}\n")
        return EXIT_INVALID
    if args.json:
        _print_json(out, _success_json(evidence))
    else:
        out.write(f"VALID {_describe(evidence)}\n")
    return EXIT_OK


def _read_bundle(source: str) -> Any:
    try:
        if source == "-":
            raw = sys.stdin.buffer.read(MAX_BUNDLE_BYTES + 1)
        else:
            with Path(source).open("rb") as handle:
                raw = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise BundleReadError(f"cannot read {source}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BUNDLE_BYTES:
        raise BundleReadError(f"{source} is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        return load_json(raw, what=source)
    except MalformedEvidence as exc:
        raise BundleReadError(str(exc)) from exc


def _report_unusable(out: TextIO, as_json: bool, message: str) -> int:
    if as_json:
        _print_json(out, {"valid": False, "error": "unusable_input", "reason": message})
    else:
        sys.stderr.write(f"error: {message}\n")
    return EXIT_USAGE


def _success_json(evidence: VerifiedEvidence) -> dict[str, Any]:
    result: dict[str, Any] = {
        "valid": True,
        "family": evidence.family.value,
        "chain_id": evidence.chain_id,
        "block_number": evidence.block_number,
        "block_hash": "0x" + evidence.block_hash.hex(),
        "receipt_hash": "0x" + evidence.receipt_hash.hex(),
        "receipt_status": evidence.receipt_status,
        "reason": None,
    }
    if evidence.quorum is not None:
        q = evidence.quorum
        result["quorum"] = {
            "have": q.have,
            "need": q.need,
            "total": q.total,
            "signers": list(q.signers),
            "skipped": list(q.skipped),
        }
    if evidence.log is not None:
        result["log_index"] = evidence.log_index
        result["log"] = evidence.log.as_json()
    if evidence.event is not None:
        result["event"] = evidence.event.as_json()
    return result


def _failure_json(family: object, exc: VerificationError) -> dict[str, Any]:
    return {
        "valid": False,
        "family": family if isinstance(family, str) else None,
        "block_number": None,
        "block_hash": None,
        "check": exc.check,
        "reason": str(exc),
    }


def _describe(evidence: VerifiedEvidence) -> str:
    text = (
        f"{evidence.family.value} chain {evidence.chain_id!r} block {evidence.block_number} "
        f"0x{evidence.block_hash.hex()}"
    )
    if evidence.quorum is not None:
        q = evidence.quorum
        text += f", signatures {len(q.signers)} weighing {q.have}/{q.total} (quorum {q.need})"
        if q.skipped:
            text += f", {len(q.skipped)} untrusted signer(s) skipped"
    if evidence.receipt_status is not None:
        text += f", receipt status {evidence.receipt_status}"
    if evidence.log is not None:
        text += f", log {evidence.log_index} from 0x{evidence.log.address.hex()}"
    if evidence.event is not None:
        text += f", event {evidence.event.signature}"
    return text


def _print_json(out: TextIO, value: object) -> None:
    out.write(json.dumps(value, sort_keys=True) + "\n")


def _cmd_demo(args: argparse.Namespace) -> int:
    out = sys.stdout
    paths = sorted(Path(args.examples).glob("*.json"))
    if not paths:
        sys.stderr.write(f"error: no example bundles in {args.examples}\n")
        return EXIT_USAGE
    out.write(f"Verifying {len(paths)} evidence bundles from {args.examples}\n\n")
    failures = 0
    for path in paths:
        failures += _demo_one(out, path)
    out.write(
        f"\n{len(paths) - failures} of {len(paths)} bundles verified; "
        "every tampered copy was rejected.\n"
        if not failures
        else f"\n{failures} problem(s); see above.\n"
    )
    return EXIT_OK if not failures else EXIT_INVALID


def _demo_one(out: TextIO, path: Path) -> int:
    document = json.loads(path.read_text(encoding="utf-8"))
    out.write(f"{path.name}\n")
    try:
        evidence = verify_bundle(document)
    except VerificationError as exc:
        out.write(f"  FAILED [{exc.check}] {exc}\n")
        return 1
    out.write(f"  valid: {_describe(evidence)}\n")
    for line in _checks_done(evidence, document):
        out.write(f"    - {line}\n")
    tampered = _tamper(document)
    try:
        verify_bundle(tampered)
    except VerificationError as exc:
        out.write(f"  tampered copy (one receipt byte changed) rejected: [{exc.check}] {exc}\n")
        return 0
    out.write("  FAILED: a tampered copy verified\n")
    return 1


def _checks_done(evidence: VerifiedEvidence, document: dict[str, Any]) -> list[str]:
    proof_items = len(document.get("proof", []))
    if evidence.quorum is None:
        lines = [
            "block hash recomputed from the header (keccak256 of the RLP header) equals the "
            "trusted hash",
            f"receipt re-encoded as consensus does and proven under receiptsRoot by a "
            f"{proof_items}-node Merkle-Patricia proof",
        ]
    else:
        q = evidence.quorum
        lines = [
            f"header hash recomputed with {evidence.crypto.hash_scheme.value}",
            f"{len(q.signers)} {'SM2' if 'sm2' in evidence.crypto.value else 'secp256k1'} "
            f"sealer signatures verified; trusted weight {q.have} >= quorum {q.need} of {q.total}",
            f"receipt hash recomputed and proven under receiptsRoot ({proof_items} proof items)",
        ]
        if evidence.log is not None:
            lines += [
                "transaction proven under txsRoot at the receipt's position, its boundaries "
                "forced: version 0, the trusted chainID and groupID, a decimal nonce, exactly "
                "the pinned call (to, input, empty abi)",
                "receipt status 0, no output, no contract address, exactly one log, from the "
                "called contract",
            ]
    if evidence.log is not None:
        lines.append(
            f"log {evidence.log_index}: {len(evidence.log.topics)} topics, "
            f"{len(evidence.log.data)} data bytes"
        )
    if evidence.event is not None:
        lines.append(
            f"decoded strictly as {evidence.event.signature}: topic count, topic 0 and the "
            "data re-encoded byte for byte"
        )
    return lines


def _tamper(document: dict[str, Any]) -> dict[str, Any]:
    """A copy with one byte of a committed receipt field changed."""
    tampered = copy.deepcopy(document)
    receipt = tampered["receipt"]
    if document["family"] == "evm":
        key = "cumulativeGasUsed"
        receipt[key] = hex(int(receipt[key], 16) ^ 1)
    else:
        receipt["gasUsed"] = str(int(receipt["gasUsed"]) ^ 1)
        receipt.pop("hash", None)  # a forger would not leave the stale hash behind
    return tampered


if __name__ == "__main__":
    sys.exit(main())
