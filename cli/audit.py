"""``gateway audit``: the auditor's commands (``docs/audit.md``).

``audit verify FILE --key PUBKEY`` checks an export offline: no gateway, no chain, no network.
``query``, ``trace`` and ``export`` talk to a running gateway's ``AuditService``; each is one
more ``_add_*`` function adding a sub-parser to the ``audit`` group below.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE


def register(sub: Any) -> None:
    """Add ``audit`` and its sub-commands."""
    audit = sub.add_parser(
        "audit",
        help="check the tamper-evident audit trail (verify an export offline)",
        description="The audit trail: every relay decision as a hash-chained record, with "
        "signed checkpoints (docs/audit.md).",
    )
    commands = audit.add_subparsers(title="audit commands", metavar="COMMAND")
    _add_verify(commands)
    audit.set_defaults(handler=lambda _args: _help(audit))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _add_verify(commands: Any) -> None:
    verify = commands.add_parser(
        "verify",
        help="verify an audit export offline",
        description="Verify an audit export (JSON Lines, interop-audit-export/1) offline: "
        "every record's hash and link, contiguous sequence numbers, every checkpoint's "
        "Ed25519 signature and head, the signed export-end head (nothing cut off), and every "
        "evidence bundle re-verified with the verifier under the trust the gateway recorded. "
        "Exit status: 0 verified, 1 tampered or invalid (the first bad sequence number and "
        "the problem are named), 2 unreadable or not an export.",
    )
    verify.add_argument("file", type=Path, metavar="FILE", help="the export, or - for stdin")
    verify.add_argument(
        "--key",
        required=True,
        metavar="PUBKEY",
        help="the gateway's audit public key: 64 hex digits, base64, or a file holding "
        "either or the PEM (audit.pub, which `gateway init` writes)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as one JSON object")
    verify.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from relay.audit import AuditKeyError, ExportFormatError, parse_public_key, verify_export

    try:
        key_text = args.key
        key_path = Path(key_text)
        if key_path.is_file():
            key_text = key_path.read_text(encoding="utf-8")
        key = parse_public_key(key_text)
    except (AuditKeyError, OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"error: --key: {exc}\n")
        return EXIT_USAGE
    try:
        if str(args.file) == "-":
            report = verify_export(sys.stdin, key)
        else:
            with args.file.open(encoding="utf-8") as f:
                report = verify_export(f, key)
    except (OSError, UnicodeDecodeError, ExportFormatError) as exc:
        sys.stderr.write(f"error: {args.file}: {exc}\n")
        return EXIT_USAGE
    if args.json:
        data = {
            "valid": report.ok,
            "gateway": report.gateway,
            "records": report.records,
            "checkpoints": report.checkpoints,
            "bundles_verified": report.bundles_verified,
            "bundles_digest_only": report.bundles_digest_only,
            "first_seq": report.first_seq,
            "last_seq": report.last_seq,
            "first_time": report.first_time,
            "last_time": report.last_time,
            "last_checkpoint_seq": report.last_checkpoint_seq,
            "unsigned_tail": report.unsigned_tail,
            "bad_seq": report.bad_seq,
            "problem": str(report.problem) if report.problem else None,
            "detail": report.detail or None,
            "kinds": report.kinds,
        }
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
        return EXIT_OK if report.ok else EXIT_INVALID
    if not report.ok:
        where = f"seq {report.bad_seq}" if report.bad_seq is not None else "export"
        sys.stdout.write(f"INVALID {where} [{report.problem}] {report.detail}\n")
        return EXIT_INVALID
    span = (
        f"seq {report.first_seq}..{report.last_seq}, {report.first_time} .. {report.last_time}"
        if report.records
        else "no records"
    )
    tail = (
        f"; {report.unsigned_tail} record(s) after the last checkpoint"
        f" ({report.last_checkpoint_seq or 'none'}), covered by the export-end signature only"
        if report.unsigned_tail
        else ""
    )
    sys.stdout.write(
        f"VERIFIED gateway {report.gateway!r}: {report.records} records ({span}), "
        f"{report.checkpoints} signed checkpoints, {report.bundles_verified} evidence bundles "
        f"re-verified, {report.bundles_digest_only} digest-checked only{tail}\n"
    )
    return EXIT_OK
