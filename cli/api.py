"""The developer CLI over the gateway's gRPC API: ``send``, ``status``, ``watch``, ``messages``.

Common options: ``--gateway HOST:PORT`` (env ``GATEWAY_ADDRESS``), ``--ca FILE`` (the gateway's
CA, env ``GATEWAY_CA``), and either a bearer token (``--token`` or env ``GATEWAY_TOKEN``; use
the gateway's ``api.listen`` port) or ``--cert``/``--key`` (a pinned client certificate; use
``gateway.listen``). The token is never printed. Exit status: 0 done, 1 the call failed
(refused, unreachable, not found), 2 unusable options or files, or an argument the gateway
called invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE

DEFAULT_ADDRESS: Final = "127.0.0.1:50052"
CALL_TIMEOUT_S: Final = 60.0

_HINTS: Final = {
    "UNAUTHENTICATED": "check --token / GATEWAY_TOKEN (or --cert/--key) and that you use the "
    "right port: tokens go to api.listen, certificates to gateway.listen",
    "PERMISSION_DENIED": "these credentials may not call the developer API",
    "UNAVAILABLE": "the gateway (or a chain behind it) is unreachable; retry later",
    "DEADLINE_EXCEEDED": "no answer in time; retry later",
}


class UsageError(Exception):
    """Bad options or unreadable files: exit 2."""


def register(sub: Any) -> None:
    """Add ``send``, ``status``, ``watch`` and ``messages``."""
    send = sub.add_parser(
        "send",
        help="send a cross-chain message through a gateway",
        description="Ask the gateway to submit sendMessage on --from (a chain it serves) to "
        "--to; prints the message id. The timeout is relative, in the destination chain's time.",
    )
    _common(send)
    send.add_argument("--from", dest="src", default="", metavar="CHAIN", help="source chain")
    send.add_argument("--to", dest="dst", required=True, metavar="CHAIN", help="destination")
    send.add_argument("--receiver", required=True, metavar="0x..", help="20-byte contract address")
    payload = send.add_mutually_exclusive_group(required=True)
    payload.add_argument("--payload", metavar="TEXT", help="UTF-8 text")
    payload.add_argument("--payload-hex", metavar="HEX", help="bytes as hex")
    send.add_argument("--timeout", type=int, default=3600, metavar="SECONDS", help="default 3600")
    send.set_defaults(handler=lambda a: _run(a, _send))

    status = sub.add_parser(
        "status",
        help="show one message's state and timeline",
        description="Everything the gateway knows about message ID: state, timeline, last error.",
    )
    _common(status)
    status.add_argument("id", metavar="ID", help="the message id (0x + 64 hex)")
    status.set_defaults(handler=lambda a: _run(a, _status))

    watch = sub.add_parser(
        "watch",
        help="follow state changes as they happen",
        description="Print every state change from sequence --from on, then live, until Ctrl-C. "
        "Resume after an interruption with --from LAST_SEQUENCE_SEEN.",
    )
    _common(watch)
    watch.add_argument("--from", dest="from_seq", type=int, default=0, metavar="SEQ")
    watch.add_argument("--chain", default="", metavar="CHAIN", help="only messages from CHAIN")
    watch.set_defaults(handler=lambda a: _run(a, _watch))

    messages = sub.add_parser(
        "messages",
        help="list messages",
        description="List the messages the gateway holds, oldest first, with filters.",
    )
    _common(messages)
    messages.add_argument("--chain", default="", metavar="CHAIN", help="only from CHAIN")
    messages.add_argument("--to", dest="dst", default="", metavar="CHAIN", help="only to CHAIN")
    messages.add_argument("--state", default="", metavar="STATE", help="e.g. acknowledged")
    messages.add_argument("--stuck", action="store_true", help="only stuck messages")
    messages.add_argument("--limit", type=int, default=100, metavar="N", help="default 100")
    messages.set_defaults(handler=lambda a: _run(a, _messages))


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--gateway",
        default=os.environ.get("GATEWAY_ADDRESS", DEFAULT_ADDRESS),
        metavar="HOST:PORT",
        help=f"the gateway's API address (env GATEWAY_ADDRESS; default {DEFAULT_ADDRESS})",
    )
    group.add_argument(
        "--ca",
        type=Path,
        default=os.environ.get("GATEWAY_CA"),
        metavar="FILE",
        help="the CA that issued the gateway's certificate (env GATEWAY_CA)",
    )
    group.add_argument("--server-name", metavar="NAME", help="expect this name in its certificate")
    group.add_argument("--token", help="bearer token (prefer env GATEWAY_TOKEN: argv is visible)")
    group.add_argument("--cert", type=Path, metavar="FILE", help="client certificate (PEM)")
    group.add_argument("--key", type=Path, metavar="FILE", help="its private key (PEM)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


# ---------------------------------------------------------------------------------------------
# Running a call: the channel, credentials, errors and exit codes in one place.


Command = Callable[[argparse.Namespace, Any], Coroutine[Any, Any, int]]


def _run(args: argparse.Namespace, command: Command) -> int:
    import grpc

    try:
        return asyncio.run(_with_stub(args, command))
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        hint = _HINTS.get(code.name)
        sys.stderr.write(f"error: {code.name}: {exc.details()}\n")
        if hint:
            sys.stderr.write(f"hint: {hint}\n")
        return EXIT_USAGE if code is grpc.StatusCode.INVALID_ARGUMENT else EXIT_INVALID
    except KeyboardInterrupt:
        return 130


async def _with_stub(args: argparse.Namespace, command: Command) -> int:
    import grpc
    import grpc.aio

    from protos.interop.v1 import interop_pb2_grpc

    credentials, metadata = _credentials(args)
    options = [("grpc.max_receive_message_length", 32 * 1024 * 1024)]
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    async with grpc.aio.secure_channel(args.gateway, credentials, options=options) as channel:
        args.metadata = metadata
        return await command(args, interop_pb2_grpc.InteropServiceStub(channel))


def _credentials(args: argparse.Namespace) -> tuple[Any, tuple[tuple[str, str], ...]]:
    import grpc

    root = _read(args.ca, "--ca") if args.ca else None
    token = args.token or os.environ.get("GATEWAY_TOKEN")
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise UsageError("--cert and --key go together")
        if token:
            raise UsageError("give a token or a client certificate, not both")
        cert, key = _read(args.cert, "--cert"), _read(args.key, "--key")
        return grpc.ssl_channel_credentials(root, key, cert), ()
    if not token:
        raise UsageError("no credentials: set GATEWAY_TOKEN (or --token), or --cert and --key")
    return grpc.ssl_channel_credentials(root), (("authorization", f"Bearer {token}"),)


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror}") from None


def _hex_bytes(text: str, what: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise UsageError(f"{what} is not hex: {text!r}") from None
    if size is not None and len(raw) != size:
        raise UsageError(f"{what} must be {size} bytes, not {len(raw)}")
    return raw


# ---------------------------------------------------------------------------------------------
# The commands


async def _send(args: argparse.Namespace, stub: Any) -> int:
    from protos.interop.v1 import interop_pb2

    payload = (
        _hex_bytes(args.payload_hex, "--payload-hex")
        if args.payload_hex is not None
        else args.payload.encode("utf-8")
    )
    if args.timeout <= 0:
        raise UsageError("--timeout must be > 0 seconds")
    request = interop_pb2.SendMessageRequest(
        src_chain=args.src,
        dst_chain=args.dst,
        receiver=_hex_bytes(args.receiver, "--receiver", 20),
        payload=payload,
        timeout_seconds=args.timeout,
    )
    response = await stub.SendMessage(request, metadata=args.metadata, timeout=CALL_TIMEOUT_S)
    out = {
        "id": "0x" + response.id.hex(),
        "tx_hash": "0x" + response.tx_hash.hex(),
        "height": response.height,
        "nonce": response.message.nonce,
        "timeout": response.message.timeout,
    }
    if args.json:
        _print_json(out)
    else:
        sys.stdout.write(
            f"sent {out['id']}\n  tx {out['tx_hash']} in block {out['height']}\n"
            f"  follow it: gateway status {out['id']}\n"
        )
    return EXIT_OK


async def _status(args: argparse.Namespace, stub: Any) -> int:
    from protos.interop.v1 import interop_pb2

    request = interop_pb2.GetMessageRequest(id=_hex_bytes(args.id, "ID", 32))
    status = await stub.GetMessage(request, metadata=args.metadata, timeout=CALL_TIMEOUT_S)
    data = status_json(status)
    if args.json:
        _print_json(data)
        return EXIT_OK
    from rich.table import Table

    head = Table(show_header=False, box=None)
    for key in ("id", "role", "route", "state", "age", "stuck", "attempts", "last_error"):
        value = data["route"] if key == "route" else data.get(key)
        head.add_row(key, str(value) if value not in (None, "") else "-")
    timeline = Table(title="timeline", title_justify="left")
    for column in ("time", "kind", "state", "height", "tx", "error"):
        timeline.add_column(column, no_wrap=column != "error")
    for e in data["timeline"]:
        tx = e["tx_hash"][:18] + "…" if e["tx_hash"] else ""
        row = (e["time"], e["kind"], e["state"], str(e["height"] or ""), tx, e["error"])
        timeline.add_row(*row)
    console = _console()
    console.print(head)
    console.print(timeline)
    return EXIT_OK


async def _watch(args: argparse.Namespace, stub: Any) -> int:
    from protos.interop.v1 import interop_pb2

    request = interop_pb2.WatchMessagesRequest(from_sequence=args.from_seq, src_chain=args.chain)
    async for change in stub.WatchMessages(request, metadata=args.metadata):
        data = change_json(change)
        if args.json:
            _print_json(data)
        else:
            error = f"  error: {data['error']}" if data["error"] else ""
            sys.stdout.write(
                f"{data['sequence']:>8}  {data['time']}  {data['id']}  "
                f"{data['src_chain']}->{data['dst_chain']}  {data['role']:<11} "
                f"{data['kind']:<7} {data['state']}{error}\n"
            )
        sys.stdout.flush()
    return EXIT_OK


async def _messages(args: argparse.Namespace, stub: Any) -> int:
    from protos.interop.v1 import interop_pb2

    state = 0
    if args.state:
        name = "MESSAGE_STATE_" + args.state.upper().replace("-", "_")
        if name not in interop_pb2.MessageState.keys():  # noqa: SIM118 - an enum wrapper, not a dict
            raise UsageError(f"--state {args.state!r} is not a state (e.g. acknowledged)")
        state = interop_pb2.MessageState.Value(name)
    if args.limit <= 0:
        raise UsageError("--limit must be > 0")
    items: list[dict[str, Any]] = []
    token = ""
    while len(items) < args.limit:
        request = interop_pb2.ListMessagesRequest(
            src_chain=args.chain,
            dst_chain=args.dst,
            state=state,  # type: ignore[arg-type]  # checked against the enum above
            stuck_only=args.stuck,
            page_size=min(500, args.limit - len(items)),
            page_token=token,
        )
        page = await stub.ListMessages(request, metadata=args.metadata, timeout=CALL_TIMEOUT_S)
        items += [status_json(s) for s in page.items]
        token = page.next_page_token
        if not token:
            break
    items = items[: args.limit]
    if args.json:
        _print_json({"items": items, "more": bool(token)})
        return EXIT_OK
    from rich.table import Table

    table = Table(title=f"{len(items)} messages{' (more: raise --limit)' if token else ''}")
    for column in ("id", "route", "role", "state", "age", "attempts", "last error"):
        table.add_column(column, no_wrap=column != "last error")
    for i in items:
        age = f"{i['age']:.0f}s" + (" STUCK" if i["stuck"] else "")
        row = (i["id"], i["route"], i["role"], i["state"], age, str(i["attempts"]))
        table.add_row(*row, i["last_error"])
    _console().print(table)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# JSON views (hex for bytes, names for enums)


def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def _time(ts: Any) -> str:
    return str(ts.ToJsonString()) if ts.seconds or ts.nanos else ""


def entry_json(e: Any) -> dict[str, Any]:
    from protos.interop.v1 import interop_pb2

    return {
        "time": _time(e.time),
        "kind": e.kind,
        "state": _name(interop_pb2.MessageState, e.state, "MESSAGE_STATE_"),
        "height": e.height,
        "tx_hash": "0x" + e.tx_hash.hex() if e.tx_hash else "",
        "error": e.error,
    }


def status_json(s: Any) -> dict[str, Any]:
    from protos.interop.v1 import interop_pb2

    return {
        "id": "0x" + s.id.hex(),
        "role": _name(interop_pb2.Role, s.role, "ROLE_"),
        "src_chain": s.src_chain,
        "dst_chain": s.dst_chain,
        "route": f"{s.src_chain}->{s.dst_chain}",
        "state": _name(interop_pb2.MessageState, s.state, "MESSAGE_STATE_"),
        "attempts": s.attempts,
        "last_error": s.last_error,
        "age": s.age.seconds + s.age.nanos / 1e9,
        "stuck": s.stuck,
        "created": _time(s.created),
        "result_status": s.result.status if s.HasField("result") else None,
        "timeline": [entry_json(e) for e in s.timeline],
    }


def change_json(c: Any) -> dict[str, Any]:
    from protos.interop.v1 import interop_pb2

    return {
        "sequence": c.sequence,
        "id": "0x" + c.id.hex(),
        "role": _name(interop_pb2.Role, c.role, "ROLE_"),
        "src_chain": c.src_chain,
        "dst_chain": c.dst_chain,
        **entry_json(c.entry),
    }


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, sort_keys=True) + "\n")


def _console() -> Any:
    from rich.console import Console

    console = Console(file=sys.stdout)
    return console if console.is_terminal else Console(file=sys.stdout, width=200)
