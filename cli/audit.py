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
from cli.api import UsageError, _common, _credentials, _hex_bytes

CALL_TIMEOUT_S = 60.0
_HINTS = {
    "UNAUTHENTICATED": "check --token / GATEWAY_AUDIT_TOKEN (or --cert/--key) and the port: "
    "tokens go to api.listen, certificates to gateway.listen",
    "PERMISSION_DENIED": "these credentials are not an auditor's (gateway init printed an "
    'auditor token; [api] tokens with role = "auditor")',
    "UNAVAILABLE": "the gateway is unreachable; retry later",
    "NOT_FOUND": "",
}


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
    _add_query(commands)
    _add_trace(commands)
    _add_export(commands)
    from cli.audit_anchors import add_anchors  # its own module (relay/anchor.py's CLI)

    add_anchors(commands)
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
        "evidence bundle re-verified with the verifier under the trust the gateway recorded "
        "and checked to prove its record's message, hop, height and transaction. "
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
    verify.add_argument(
        "--known-checkpoints",
        "--previous-export",
        dest="known",
        type=Path,
        metavar="FILE2",
        help="an earlier export of the same gateway (or JSON Lines of checkpoint lines) you "
        "kept: every signed head in it that falls in FILE's range must be FILE's record hash "
        "at that seq, else the history was rewritten since (exit 1)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as one JSON object")
    verify.set_defaults(handler=cmd_verify)


def _read_key(text: str) -> Any:
    from relay.audit import parse_public_key

    key_path = Path(text)
    if key_path.is_file():
        text = key_path.read_text(encoding="utf-8")
    return parse_public_key(text)


def cmd_verify(args: argparse.Namespace) -> int:
    from relay.audit import (
        AuditKeyError,
        ExportFormatError,
        load_known_checkpoints,
        verify_export,
    )
    from relay.audit_check import bounded_lines

    try:
        key = _read_key(args.key)
    except (AuditKeyError, OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"error: --key: {exc}\n")
        return EXIT_USAGE
    known = []
    if args.known is not None:
        try:
            with args.known.open(encoding="utf-8") as f:
                known = load_known_checkpoints(bounded_lines(f), key)
        except (OSError, UnicodeDecodeError, ExportFormatError) as exc:
            sys.stderr.write(f"error: --known-checkpoints {args.known}: {exc}\n")
            return EXIT_USAGE
    try:
        if str(args.file) == "-":
            report = verify_export(bounded_lines(sys.stdin), key, known=known)
        else:
            with args.file.open(encoding="utf-8") as f:
                report = verify_export(bounded_lines(f), key, known=known)
    except (OSError, UnicodeDecodeError, ExportFormatError) as exc:
        sys.stderr.write(f"error: {args.file}: {exc}\n")
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(json.dumps(_report_json(report), sort_keys=True) + "\n")
        return EXIT_OK if report.ok else EXIT_INVALID
    if not report.ok:
        where = f"seq {report.bad_seq}" if report.bad_seq is not None else "export"
        sys.stdout.write(f"INVALID {where} [{report.problem}] {report.detail}\n")
        return EXIT_INVALID
    sys.stdout.write(_verified_line(report, known=args.known is not None) + "\n")
    return EXIT_OK


def _report_json(report: Any) -> dict[str, Any]:
    return {
        "valid": report.ok,
        "gateway": report.gateway,
        "exported_at": report.exported_at,
        "records": report.records,
        "checkpoints": report.checkpoints,
        "bundles_verified": report.bundles_verified,
        "bundles_digest_only": report.bundles_digest_only,
        "trust_roots": report.trust_roots,
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "first_time": report.first_time,
        "last_time": report.last_time,
        "last_checkpoint_seq": report.last_checkpoint_seq,
        "unsigned_tail": report.unsigned_tail,
        "known_checked": report.known_checked,
        "known_beyond": report.known_beyond,
        "bad_seq": report.bad_seq,
        "problem": str(report.problem) if report.problem else None,
        "detail": report.detail or None,
        "kinds": report.kinds,
    }


def _verified_line(report: Any, *, known: bool) -> str:
    from relay.audit_check import describe_roots

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
    held = (
        f"; {report.known_checked} checkpoint(s) you already held agree"
        + (f", {report.known_beyond} are past this export's end" if report.known_beyond else "")
        if known
        else ""
    )
    return (
        f"VERIFIED gateway {report.gateway!r}: {report.records} records ({span}), "
        f"{report.checkpoints} signed checkpoints, {report.bundles_verified} evidence bundles "
        f"re-verified, {report.bundles_digest_only} digest-checked only{tail}; exported (signed) "
        f"at {report.exported_at}{held}; trust roots: {describe_roots(report.trust_roots)}"
    )


# ---------------------------------------------------------------------------------------------
# Commands against a running gateway's AuditService (auditor credentials)


def _connection(parser: argparse.ArgumentParser) -> None:
    """cli.api's connection options; the token comes from --token, GATEWAY_AUDIT_TOKEN or
    GATEWAY_TOKEN (in that order) and must be an auditor's."""
    _common(parser)


def _add_query(commands: Any) -> None:
    query = commands.add_parser(
        "query",
        help="list audit records of a running gateway",
        description="Audit records matching all the filters given, oldest first (AuditService "
        "QueryRecords, auditor credentials). Times: ISO 8601 (UTC unless an offset is given) "
        "or Unix seconds.",
    )
    _connection(query)
    query.add_argument("--message", metavar="ID", help="only records of this message id")
    query.add_argument("--chain", metavar="CHAIN", help="only records whose src or dst is CHAIN")
    query.add_argument("--kind", metavar="KIND", help="e.g. forwarded, delivered (docs/audit.md)")
    query.add_argument("--state", metavar="STATE", help="the row's state after the change")
    query.add_argument("--role", choices=("source", "destination"))
    query.add_argument("--since", metavar="TIME", help="records at or after TIME")
    query.add_argument("--until", metavar="TIME", help="records before TIME")
    query.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (100)")
    query.set_defaults(handler=lambda a: _run(a, _query))


def _add_trace(commands: Any) -> None:
    trace = commands.add_parser(
        "trace",
        help="one message's records on both gateways, verified",
        description="The message's records on this gateway and on the peer serving its other "
        "chain; each gateway's part is checked against its signed checkpoint (the peer's with "
        "the audit_key configured for it). Exit status 1 when a part did not verify.",
    )
    _connection(trace)
    trace.add_argument("id", metavar="ID", help="the message id (0x + 64 hex)")
    trace.set_defaults(handler=lambda a: _run(a, _trace))


def _add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export the audit trail (JSON Lines) for offline verification",
        description="Write the gateway's audit export (interop-audit-export/1: records, "
        "evidence bundles, signed checkpoints and a signed end line) to --out; check it with "
        "`gateway audit verify FILE --key audit.pub`.",
    )
    _connection(export)
    export.add_argument("--out", required=True, metavar="FILE", help="the file, or - for stdout")
    export.add_argument("--from", dest="from_seq", type=int, default=1, metavar="SEQ")
    export.set_defaults(handler=lambda a: _run(a, _export))


def _run(args: argparse.Namespace, command: Any) -> int:
    import asyncio

    import grpc

    try:
        return int(asyncio.run(_with_stub(args, command)))
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        sys.stderr.write(f"error: {code.name}: {exc.details()}\n")
        hint = _HINTS.get(code.name)
        if hint:
            sys.stderr.write(f"hint: {hint}\n")
        return EXIT_USAGE if code is grpc.StatusCode.INVALID_ARGUMENT else EXIT_INVALID
    except KeyboardInterrupt:
        return 130


async def _with_stub(args: argparse.Namespace, command: Any) -> int:
    import os

    import grpc.aio

    from protos.interop.v1 import audit_pb2_grpc

    if not args.token and not (args.cert or args.key):
        args.token = os.environ.get("GATEWAY_AUDIT_TOKEN") or None
    credentials, metadata = _credentials(args)
    options = [("grpc.max_receive_message_length", 32 * 1024 * 1024)]
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    async with grpc.aio.secure_channel(args.gateway, credentials, options=options) as channel:
        args.metadata = metadata
        result: int = await command(args, audit_pb2_grpc.AuditServiceStub(channel))
        return result


def _time(text: str, option: str) -> Any:
    from datetime import UTC, datetime

    from google.protobuf import timestamp_pb2

    try:
        at = (
            datetime.fromtimestamp(float(text), UTC)
            if text.replace(".", "", 1).isdigit()
            else datetime.fromisoformat(text.replace("Z", "+00:00"))
        )
    except ValueError:
        raise UsageError(f"{option}: not ISO 8601 or Unix seconds: {text!r}") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(at)
    return ts


def _enum(enum: Any, prefix: str, value: str | None, option: str) -> int:
    if not value:
        return 0
    name = prefix + value.upper().replace("-", "_")
    try:
        number: int = enum.Value(name)
    except ValueError:
        names = [
            n.removeprefix(prefix).lower() for n, _ in enum.items() if not n.endswith("UNSPECIFIED")
        ]
        raise UsageError(f"{option}: {value!r} is none of {', '.join(names)}") from None
    return number


def _record(r: Any) -> dict[str, Any]:
    """The record as shown: its ``record_json``, parsed with bounds (a peer's part is hostile
    input until verified: a deeply nested line must not crash this process)."""
    from relay.audit_guard import load_line

    try:
        loaded = load_line(r.record_json, "record")
    except ValueError as exc:
        loaded = None
        reason = str(exc)
    else:
        reason = "not a JSON object"
    if not isinstance(loaded, dict):
        blank = dict.fromkeys(
            ("time", "message_id", "role", "src_chain", "dst_chain", "state"), "?"
        )
        return {**blank, "seq": "?", "kind": "unreadable", "reason": reason[:200]}
    return loaded


async def _query(args: argparse.Namespace, stub: Any) -> int:
    from protos.interop.v1 import audit_pb2, interop_pb2

    if args.limit < 1:
        raise UsageError("--limit must be >= 1")
    request = audit_pb2.QueryRecordsRequest(
        message_id=_hex_bytes(args.message, "--message", 32) if args.message else b"",
        chain=args.chain or "",
        kind=_enum(audit_pb2.AuditKind, "AUDIT_KIND_", args.kind, "--kind"),  # type: ignore[arg-type]
        state=_enum(interop_pb2.MessageState, "MESSAGE_STATE_", args.state, "--state"),  # type: ignore[arg-type]
        role=_enum(interop_pb2.Role, "ROLE_", args.role, "--role"),  # type: ignore[arg-type]
    )
    if args.since:
        request.since.CopyFrom(_time(args.since, "--since"))
    if args.until:
        request.until.CopyFrom(_time(args.until, "--until"))
    records: list[dict[str, Any]] = []
    while len(records) < args.limit:
        request.page_size = min(1000, args.limit - len(records))
        page = await stub.QueryRecords(request, metadata=args.metadata, timeout=CALL_TIMEOUT_S)
        records += [_record(r) for r in page.records]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    if args.json:
        sys.stdout.write(json.dumps(records, sort_keys=True) + "\n")
        return EXIT_OK
    _table(records, title=f"{len(records)} audit record(s)")
    return EXIT_OK


def _table(records: list[dict[str, Any]], *, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("seq", "time", "kind", "message", "role", "route", "state", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    for r in records:
        detail = [
            f"{k}={r[k]}"
            for k in ("height", "tx_hash", "peer", "endpoint", "check", "reason")
            if r.get(k) not in (None, "")
        ]
        if r.get("evidence_digest"):
            detail.append(f"evidence={r['evidence_digest'][:16]}…")
        table.add_row(
            str(r["seq"]),
            r["time"],
            r["kind"],
            r["message_id"][:10] + "…",
            r["role"],
            f"{r['src_chain']}→{r['dst_chain']}",
            r["state"],
            " ".join(detail),
        )
    Console(width=200).print(table)


async def _trace(args: argparse.Namespace, stub: Any) -> int:
    from protos.interop.v1 import audit_pb2

    id = _hex_bytes(args.id, "ID", 32)
    answer = await stub.TraceMessage(
        audit_pb2.TraceMessageRequest(id=id), metadata=args.metadata, timeout=CALL_TIMEOUT_S
    )
    parts = [
        {
            "gateway": p.gateway,
            "local": p.local,
            "verified": p.verified,
            "problem": p.problem or None,
            "public_key": p.public_key.hex() or None,
            "checkpoint_seq": p.checkpoint.seq if p.HasField("checkpoint") else None,
            "truncated": p.truncated,
            "records": [_record(r) for r in p.records],
        }
        for p in answer.parts
    ]
    ok = all(p["verified"] for p in parts)
    if args.json:
        sys.stdout.write(json.dumps({"id": "0x" + id.hex(), "parts": parts}, sort_keys=True))
        sys.stdout.write("\n")
        return EXIT_OK if ok else EXIT_INVALID
    sys.stdout.write(f"message 0x{id.hex()}\n")
    for p in parts:
        where = "this gateway" if p["local"] else "peer"
        status = (
            f"VERIFIED against the checkpoint at seq {p['checkpoint_seq']} "
            f"(key {str(p['public_key'])[:16]}…)"
            if p["verified"]
            else f"NOT VERIFIED: {p['problem']}"
        )
        sys.stdout.write(f"\n{p['gateway']} ({where}): {status}\n")
        if p["truncated"]:
            sys.stdout.write(
                "TRUNCATED: more records than a trace shows; every state change is shown, "
                "some rejected attempts are not (gateway audit query --message for all)\n"
            )
        if p["records"]:
            _table(p["records"], title=f"{p['gateway']}: {len(p['records'])} record(s)")
    return EXIT_OK if ok else EXIT_INVALID


async def _export(args: argparse.Namespace, stub: Any) -> int:
    import os

    from protos.interop.v1 import audit_pb2

    if args.from_seq < 1:
        raise UsageError("--from must be >= 1")
    call = stub.ExportRecords(
        audit_pb2.ExportRecordsRequest(from_seq=args.from_seq),
        metadata=args.metadata,
        timeout=CALL_TIMEOUT_S,
    )
    lines = [line.line async for line in call]
    text = "".join(f"{line}\n" for line in lines)
    if args.out == "-":
        sys.stdout.write(text)
        return EXIT_OK
    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)  # a complete export or none: a cut file would look truncated
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror}") from None
    records = sum(1 for line in lines if '"type":"audit-record"' in line)
    sys.stderr.write(f"exported {records} record(s) in {len(lines)} lines to {out}\n")
    return EXIT_OK
