"""``gateway demo``: two chains, two gateways, messages both ways, followed to acknowledgement.

Everything runs as children of this process on 127.0.0.1 (Anvil, the FISCO devnode, two
``gateway run``); any failure, Ctrl-C or SIGTERM stops them all (``devnet/demo.py``). The
traffic goes through the developer API only (``devnet/demo_flow.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from rich.console import Console

    from devnet.demo import DemoCluster
    from devnet.demo_flow import Tracker

DEFAULT_MESSAGES: Final = 10
DEFAULT_TIMEOUT: Final = 300.0
MESSAGE_TIMEOUT: Final = 3600
"""Seconds each API message may take before it expires at its destination."""


def register(sub: Any) -> None:
    """Add ``demo``."""
    demo = sub.add_parser(
        "demo",
        help="run the demo on the embedded default",
        description="Start Anvil and a FISCO BCOS devnode, deploy the gateway contract and the "
        "example apps on both, write and start two gateways (one per chain, each pinning the "
        "other), send messages both ways through the developer API plus a ping-pong round "
        "trip and a notarisation, follow everything to acknowledgement and print a table. "
        "Exit status 0 only when every message was acknowledged. Everything started is a "
        "child of this command and stops with it (Ctrl-C included).",
    )
    demo.add_argument(
        "--messages",
        type=int,
        default=DEFAULT_MESSAGES,
        metavar="N",
        help=f"API messages each way (default {DEFAULT_MESSAGES})",
    )
    demo.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the gateways' folders here (absent or empty; default a new temporary one)",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="once the gateways start, give up after this long, naming what is stuck "
        f"(default {DEFAULT_TIMEOUT:.0f})",
    )
    demo.add_argument(
        "--json", action="store_true", help="end with one JSON line of totals (progress: stderr)"
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the chains and gateways up and print how to reach them (Ctrl-C stops)",
    )
    demo.set_defaults(handler=cmd_demo)


class _Stop(Exception):
    """SIGTERM arrived: stop like Ctrl-C."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def cmd_demo(args: argparse.Namespace) -> int:
    if args.messages < 0 or args.timeout <= 0:
        sys.stderr.write("error: --messages must be >= 0 and --timeout > 0\n")
        return EXIT_USAGE
    from rich.console import Console

    from devnet.demo import DemoCluster, DemoError, prepare_directory

    console = Console(stderr=args.json, highlight=False, width=None if sys.stdout.isatty() else 120)
    started = time.monotonic()

    def progress(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f} s[/dim]  {text}")

    try:
        root = prepare_directory(args.dir)
    except DemoError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # Also when started in the background, where a shell leaves SIGINT ignored.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    cluster = DemoCluster(root, progress=progress)
    progress(f"demo folder {root}")
    totals: dict[str, Any] | None = None
    try:
        cluster.start_chains()
        cluster.deploy()
        cluster.write_gateways()
        cluster.start_gateways()
        totals = asyncio.run(_traffic(cluster, args, console, progress))
        if args.json:
            sys.stdout.write(json.dumps(totals) + "\n")
            sys.stdout.flush()
        if args.keep_running:
            _print_access(cluster, console)
            while True:
                cluster.check_alive()
                time.sleep(1)
    except (KeyboardInterrupt, _Stop):
        console.print("stopping every process the demo started")
        if totals is None:
            return 130
    except Exception as exc:  # every failure ends as one readable line, children stopped
        console.print(f"[red]error:[/red] {_describe(exc)}", markup=True, highlight=False)
        console.print(f"logs: {root / 'logs'}")
        return EXIT_INVALID
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    assert totals is not None
    return EXIT_OK if totals["acknowledged"] == totals["sent"] else EXIT_INVALID


async def _traffic(
    cluster: DemoCluster,
    args: argparse.Namespace,
    console: Console,
    progress: Any,
) -> dict[str, Any]:
    from devnet.demo_flow import Api, Tracker, send_app_messages, send_notarisations

    apis = {name: Api(handle) for name, handle in cluster.gateways.items()}
    tracker = Tracker(apis)
    phase = "waiting for the gateways to answer"
    try:
        async with asyncio.timeout(args.timeout):
            for name, api in apis.items():
                child = cluster.gateways[name].child
                assert child is not None
                phase = f"waiting for gateway {name} to answer on {api.handle.api_listen}"
                await api.wait_ready(args.timeout, child.check_alive)
            progress("both gateways answer; sending")
            t0 = time.monotonic()
            phase = "sending through the developer API"
            await send_notarisations(cluster, apis, tracker, args.messages, timeout=MESSAGE_TIMEOUT)
            await send_app_messages(cluster, apis, tracker)
            progress(f"sent {len(tracker.messages)} messages; following them")
            phase = "following the messages to acknowledgement"
            await _follow(cluster, tracker, progress)
    except TimeoutError:
        lines = await _stuck_lines(tracker)
        raise TimeoutError(
            f"--timeout {args.timeout:g} s passed while {phase}; stuck:\n  "
            + "\n  ".join(lines or ["(nothing reported)"])
        ) from None
    finally:
        for api in apis.values():
            await api.close()
    totals = tracker.totals(time.monotonic() - t0)
    _print_table(tracker, console)
    console.print(
        f"{totals['acknowledged']} of {totals['sent']} messages acknowledged "
        f"({totals['failed']} failed, {totals['expired']} expired, {totals['rejected']} "
        f"rejected) in {totals['seconds']} s"
    )
    return totals


async def _stuck_lines(tracker: Tracker) -> list[str]:
    try:
        async with asyncio.timeout(20):
            return await tracker.stuck_report()
    except TimeoutError:
        return ["the gateways' APIs did not answer"]


async def _follow(cluster: DemoCluster, tracker: Tracker, progress: Any) -> None:
    last = -1
    while True:
        cluster.check_alive()
        await tracker.poll()
        finished = sum(m.finished for m in tracker.messages)
        if finished != last:
            states: dict[str, int] = {}
            for m in tracker.messages:
                states[m.state] = states.get(m.state, 0) + 1
            summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            progress(f"{finished}/{len(tracker.messages)} finished ({summary})")
            last = finished
        if tracker.done:
            return
        await asyncio.sleep(0.5)


def _print_table(tracker: Tracker, console: Console) -> None:
    from rich.table import Table

    table = Table(title="messages")
    for column in ("message", "id", "route", "status", "latency"):
        table.add_column(column)
    for m in tracker.messages:
        latency = f"{m.latency:.1f} s" if m.latency is not None else "-"
        mid = f"0x{m.id.hex()[:12]}…" if m.id else "-"
        table.add_row(m.label, mid, m.route, m.outcome, latency)
    console.print(table)


def _print_access(cluster: DemoCluster, console: Console) -> None:
    lines = ["", "Everything keeps running; Ctrl-C stops it all.", ""]
    for name, handle in cluster.gateways.items():
        other = next(h for h in cluster.gateways.values() if h is not handle)
        notary = cluster.contracts[other.chain].notary
        grpcurl = f"grpcurl -cacert {handle.ca} -H 'authorization: Bearer {handle.token}'"
        lines += [
            f"gateway {name} (serves {handle.chain}): config {handle.config}, "
            f"logs {cluster.root / 'logs'}",
            "  with the CLI:",
            f"    export GATEWAY_ADDRESS={handle.api_listen} GATEWAY_CA={handle.ca} "
            f"GATEWAY_TOKEN={handle.token}",
            "    gateway messages",
            f"    gateway send --from {handle.chain} --to {other.chain} --receiver {notary} "
            f"--payload-hex {'ab' * 32}",
            "    gateway watch",
            "  as an auditor:",
            f"    export GATEWAY_AUDIT_TOKEN={handle.auditor_token}",
            "    gateway audit query; gateway audit trace <ID>",
            f"    gateway audit export --out {name}-audit.jsonl && gateway audit verify "
            f"{name}-audit.jsonl --key {handle.directory / 'audit.pub'}",
            "  with grpcurl:",
            f"    {grpcurl} {handle.api_listen} interop.v1.InteropService/ListChains",
            f"    {grpcurl} -d '{{\"page_size\": 5}}' {handle.api_listen} "
            "interop.v1.InteropService/ListMessages",
            f"  metrics: http://{handle.metrics_listen}/metrics "
            f"(probes http://{handle.metrics_listen}/livez and /readyz)",
            "",
        ]
    # Unwrapped: the commands must survive copy and paste.
    console.file.write("\n".join(lines) + "\n")
    console.file.flush()


def _describe(exc: BaseException) -> str:
    """One readable text per failure: gRPC errors by code and details, groups flattened."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if callable(code) and callable(details):
        return f"the API answered {code().name}: {details()}"
    return str(exc) or type(exc).__name__
