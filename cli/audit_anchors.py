"""``gateway audit anchors``: an export against the checkpoints anchored on a chain."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def add_anchors(commands: Any) -> None:
    """Add ``audit anchors`` to ``gateway audit``'s sub-commands."""
    anchors = commands.add_parser(
        "anchors",
        help="check an export against the checkpoints anchored on a chain",
        description="Verify the export as `gateway audit verify` does, then read the "
        "AuditAnchor contract's Anchored events from the chain (getLogs) and check, for "
        "each anchored seq, that the export's record at that seq has the anchored head hash "
        "(and its checkpoint line, if any, the anchored digest). An export re-written and "
        "re-signed with the gateway's own key fails here: the anchors cannot be re-written. "
        "Exit status: 0 every anchor matches, 1 the export is invalid, rewritten or "
        "truncated, 2 bad usage or the chain could not be read.",
    )
    anchors.add_argument("file", type=Path, metavar="FILE", help="an audit export")
    anchors.add_argument(
        "--key", required=True, metavar="PUBKEY", help="the gateway's audit public key or its file"
    )
    anchors.add_argument(
        "--chain-url", required=True, metavar="URL", help="a JSON-RPC endpoint of the chain"
    )
    anchors.add_argument("--contract", required=True, metavar="0x..", help="AuditAnchor address")
    anchors.add_argument(
        "--family",
        choices=("evm", "fisco"),
        default="evm",
        help="the chain's family: evm (eth_getLogs) or fisco (FISCO BCOS getLogs, plain HTTP)",
    )
    anchors.add_argument("--group", default="group0", help="the FISCO BCOS group (fisco only)")
    anchors.add_argument(
        "--by",
        metavar="0x..",
        required=True,
        help="the account whose anchors count (the gateway's relayer account on that chain): "
        "AuditAnchor takes anyone's calls, so another sender's anchors would be false alarms",
    )
    anchors.add_argument("--json", action="store_true", help="one JSON object")
    anchors.set_defaults(handler=cmd_anchors)


def cmd_anchors(args: argparse.Namespace) -> int:
    from relay.anchor import AnchorReadError, check_anchors, export_heads, read_anchors
    from relay.audit import AuditKeyError, ExportFormatError, parse_public_key, verify_export

    for option, value in (("--contract", args.contract), ("--by", args.by)):
        if value is not None and _ADDRESS.fullmatch(value) is None:
            sys.stderr.write(f"error: {option}: not an address (0x and 40 hex digits)\n")
            return EXIT_USAGE
    try:
        text = args.key
        if Path(text).is_file():
            text = Path(text).read_text(encoding="utf-8")
        key = parse_public_key(text)
    except (AuditKeyError, OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"error: --key: {exc}\n")
        return EXIT_USAGE
    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
        report = verify_export(lines, key)
    except (OSError, UnicodeDecodeError, ExportFormatError) as exc:
        sys.stderr.write(f"error: {args.file}: {exc}\n")
        return EXIT_USAGE
    if not report.ok:
        where = f"seq {report.bad_seq}" if report.bad_seq is not None else "export"
        detail = f"[{report.problem}] {report.detail}"
        if args.json:
            out = {"valid": False, "verify": f"INVALID {where} {detail}", "anchors": []}
            sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
        else:
            sys.stdout.write(f"INVALID {where} {detail}\n")
        return EXIT_INVALID
    try:
        anchors = asyncio.run(
            read_anchors(
                args.chain_url, args.contract, by=args.by, family=args.family, group=args.group
            )
        )
    except AnchorReadError as exc:
        sys.stderr.write(f"error: {args.chain_url}: {exc}\n")
        return EXIT_USAGE
    records, checkpoints = export_heads(lines)
    results = check_anchors(anchors, records, checkpoints)
    valid = all(r.ok for r in results)
    if args.json:
        out = {
            "valid": valid,
            "records": report.records,
            "anchors": [r.to_json() for r in results],
        }
        sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
        return EXIT_OK if valid else EXIT_INVALID
    sys.stdout.write(f"{'SEQ':>8}  {'BLOCK':>8}  {'STATUS':<18}  TX\n")
    for r in results:
        a = r.anchor
        sys.stdout.write(f"{a.seq:>8}  {a.block:>8}  {r.status:<18}  {a.tx_hash}\n")
    for r in results:
        if not r.ok:
            sys.stdout.write(f"INVALID seq {r.anchor.seq}: {r.detail}\n")
    if valid:
        matched = sum(r.status == "match" for r in results)
        sys.stdout.write(
            f"ANCHORED: {report.records} records verified; {matched} of {len(results)} "
            "anchored checkpoint(s) match this export\n"
        )
    return EXIT_OK if valid else EXIT_INVALID
