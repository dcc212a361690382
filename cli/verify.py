"""``gateway verify``: one evidence bundle, or with ``--examples`` the shipped examples, each
verified and a tampered copy of each shown rejected (``gateway demo`` runs the relay)."""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Final, TextIO

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from verifier.encoding import load_json
from verifier.errors import MalformedEvidence, VerificationError
from verifier.evidence import BundleFormatError, verify_bundle
from verifier.limits import MAX_BUNDLE_BYTES
from verifier.types import VerifiedEvidence

EXAMPLES_DIR: Final = Path(__file__).resolve().parents[1] / "docs" / "examples"


class BundleReadError(Exception):
    """The bundle file could not be read or is not JSON."""


def register(sub: Any) -> None:
    """Add ``verify``."""
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
    verify.add_argument(
        "bundle", nargs="?", metavar="BUNDLE.json", help="bundle file, or - for stdin"
    )
    verify.add_argument("--json", action="store_true", help="print the result as one JSON object")
    verify.add_argument(
        "--examples",
        nargs="?",
        type=Path,
        const=EXAMPLES_DIR,
        default=None,
        metavar="DIR",
        help="instead of BUNDLE.json: verify every bundle in DIR (default docs/examples) and "
        "show a tampered copy of each rejected",
    )
    verify.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    if args.examples is not None:
        if args.bundle is not None or args.json:
            sys.stderr.write("error: --examples takes no BUNDLE.json and no --json\n")
            return EXIT_USAGE
        return cmd_examples(args.examples)
    if args.bundle is None:
        sys.stderr.write("error: name a BUNDLE.json (or - for stdin), or use --examples\n")
        return EXIT_USAGE
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
        out.write(f"VALID {describe(evidence)}\n")
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


def describe(evidence: VerifiedEvidence) -> str:
    """One line: chain, block, quorum, receipt status, log and event."""
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


def cmd_examples(examples: Path) -> int:
    out = sys.stdout
    paths = sorted(Path(examples).glob("*.json"))
    if not paths:
        sys.stderr.write(f"error: no example bundles in {examples}\n")
        return EXIT_USAGE
    out.write(f"Verifying {len(paths)} evidence bundles from {examples}\n\n")
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
    out.write(f"  valid: {describe(evidence)}\n")
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
