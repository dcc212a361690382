"""Audit-trail benchmark: `make bench` (sixth part) or `python -m bench.audit`.

Not a timed test; one run on this machine prints:

1. **Appends** (``--appends``, default 20,000 records): a source gateway's message lifecycle
   driven through the real ``SqliteStore`` (a file in a temporary folder, WAL,
   ``synchronous=FULL``): observed (with its bundle), verified (with the trust it relied on),
   forwarded, result verified (with the result's bundle and trust), acknowledgement submitted,
   acknowledged; 64 messages in flight, as the pipeline keeps them. Every transition writes its
   audit record in the same transaction, and the ``AuditLog`` signs a checkpoint every 1,000
   records (``CheckpointPolicy()``, the default). The same transitions run again on a fresh
   store without an audit log: the ratio of the two rates is the trail's cost. The store's
   export (``SqliteStore.audit_export``, what ``gateway audit export`` writes) is timed too.
2. **Verify** (``--records``, default 100,000): an export of that many records of the same
   lifecycle, made with ``relay.audit.record_from_transition`` (what ``AuditLog`` appends),
   a checkpoint signed every 1,000 records and ``write_export``, is written to a file and
   checked with ``verify_export`` in this process, then with ``gateway audit verify FILE --key
   audit.pub`` as a subprocess (the auditor's command, interpreter start included). Records per
   second, and distinct bundles re-verified by ``verifier/`` per second. (Appending 100,000
   records through the store takes several minutes on this machine, every one a ``FULL`` commit;
   the export is therefore built in memory, from the same records the log would hold.)

Half of the records name a bundle and a third name the trust it was verified under (observed:
digest only; verified and result verified: bundle and trust). Every bundle proves its record
(``verify_export`` checks that): each message has its own two bundles, built by
``bench.audit_bundles`` as a real export holds them, the gateway's ``MessageSent`` and its
``MessageDelivered`` in synthetic London blocks with real receipt tries, proofs and block
hashes, at the heights and transactions the records state. ``verify_export`` verifies each
distinct (bundle, trust) pair once, so the bundle figures are per distinct bundle (two per
message), and their count is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from bench.audit_bundles import (
    DST_CHAIN,
    DST_GATEWAY,
    SRC_CHAIN,
    SRC_GATEWAY,
    Evidence,
    message_evidence,
)
from bench.machine import describe_machine
from relay.audit import (
    DEFAULT_CHECKPOINT_RECORDS,
    AuditKey,
    AuditLog,
    AuditRecord,
    Checkpoint,
    CheckpointPolicy,
    Reliance,
    evidence_digest,
    record_from_transition,
    sign_checkpoint,
    verify_export,
    write_export,
)
from relay.sqlite_store import SqliteStore
from relay.store import HistoryEntry, Hop, Role, State, Transition
from verifier.evidence import verify_bundle
from verifier.hashing import keccak256
from verifier.messages import DeliveryResult, DeliveryStatus, Message, message_id

IN_FLIGHT: Final = 64
GATEWAY: Final = "bench-gw"
PER_MESSAGE: Final = 6
SAMPLE: Final = 2_000
"""Bundles timed alone with ``verify_bundle`` (the first ones built)."""


# ---------------------------------------------------------------------------------------------
# A source gateway's lifecycle (relay/pipeline.py)


def _transitions(n: int, at: float = 0.0) -> tuple[list[Transition], tuple[Evidence, ...]]:
    """The six state changes of message ``n`` on its source gateway, and its two bundles."""
    message = Message(
        SRC_CHAIN,
        SRC_GATEWAY,
        DST_CHAIN,
        n,
        b"\x02" * 20,
        b"\x03" * 20,
        b"bench %d" % n,
        2_000_000_000,
    )
    id = message_id(message, keccak256)
    sent, result = message_evidence(n, message)
    outcome = DeliveryResult(id, DST_CHAIN, DST_GATEWAY, DeliveryStatus.SUCCESS, b"ok")
    s = Role.SOURCE

    def move(to: State, frm: State, **kw: Any) -> Transition:
        return Transition(id, s, to, frozenset({frm}), at, **kw)

    steps = [
        Transition(
            id,
            s,
            State.OBSERVED,
            None,
            at,
            message,
            evidence=(Hop.MESSAGE_SENT, sent.bundle, "rpc-a"),
            height=sent.height,
            tx_hash=sent.tx_hash,
        ),
        move(State.VERIFIED, State.OBSERVED, audit=sent.relied),
        move(State.FORWARDED, State.VERIFIED),
        move(
            State.RESULT_VERIFIED,
            State.FORWARDED,
            result=outcome,
            evidence=(Hop.DELIVERY_RESULT, result.bundle, "peer-b:rpc-b"),
            audit=result.relied,
            height=result.height,
            tx_hash=result.tx_hash,
        ),
        move(State.ACK_SUBMITTED, State.RESULT_VERIFIED, tx_hash="0x" + keccak256(id).hex()),
        move(State.ACKNOWLEDGED, State.ACK_SUBMITTED),
    ]
    return steps, (sent, result)


def build_messages(records: int) -> tuple[list[list[Transition]], list[Evidence]]:
    """Messages holding ``records`` transitions in all (the last one may be still in flight),
    and every bundle they name (two per message: each message proves its own facts)."""
    messages: list[list[Transition]] = []
    bundles: list[Evidence] = []
    for n in range(-(-records // PER_MESSAGE)):
        steps, evidence = _transitions(n)
        messages.append(steps[: records - n * PER_MESSAGE])
        bundles.extend(evidence)
    return messages, bundles


# ---------------------------------------------------------------------------------------------
# 1. Appends through SqliteStore


async def drive(store: SqliteStore, messages: Sequence[list[Transition]]) -> float:
    """Seconds to apply every message's transitions in order, ``IN_FLIGHT`` messages at a time."""
    queue = iter(messages)

    async def worker() -> None:
        for steps in queue:
            for t in steps:
                # Stamped when applied, as the pipeline does (the policy's seconds use them).
                if not await store.transition(dataclasses.replace(t, at=time.time())):
                    raise RuntimeError(f"transition to {t.to} refused")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return time.perf_counter() - t0


@dataclass(slots=True)
class Figures:
    appends: int = 0
    on_s: float = 0.0
    off_s: float = 0.0
    store_checkpoints: int = 0
    store_export_s: float = 0.0
    records: int = 0
    build_s: float = 0.0
    export_bytes: int = 0
    checkpoints: int = 0
    verify_s: float = 0.0
    bundles: int = 0
    digest_only: int = 0
    cli_s: float = 0.0
    cli_start_s: float = 0.0
    cli_output: str = ""


async def appends(folder: Path, messages: list[list[Transition]], fig: Figures) -> None:
    key = AuditKey.generate()
    fig.appends = sum(map(len, messages))
    on = SqliteStore(folder / "on", audit_log=AuditLog(GATEWAY, key, CheckpointPolicy()))
    await on.open()
    try:
        fig.on_s = await drive(on, messages)
        t0 = time.perf_counter()
        lines = await on.audit_export(time.time())
        fig.store_export_s = time.perf_counter() - t0
    finally:
        await on.close()
    fig.store_checkpoints = sum('"type":"checkpoint"' in line for line in lines)
    off = SqliteStore(folder / "off")
    await off.open()
    try:
        fig.off_s = await drive(off, messages)
    finally:
        await off.close()


# ---------------------------------------------------------------------------------------------
# 2. An export of --records records, verified in process and by `gateway audit verify`


def _records(messages: Sequence[list[Transition]], start: float) -> Iterator[AuditRecord]:
    """The records ``AuditLog`` appends for these transitions, one millisecond apart."""
    prev: AuditRecord | None = None
    seq = 0
    for steps in messages:
        for t in steps:
            seq += 1
            entry = HistoryEntry(
                seq, t.id, t.role, t.to, start + seq / 1000, "state", t.height, t.tx_hash,
                src_chain=SRC_CHAIN, dst_chain=DST_CHAIN,
            )  # fmt: skip
            relied = t.audit if isinstance(t.audit, Reliance) else None
            prev = record_from_transition(t, entry, gateway=GATEWAY, prev=prev, relied=relied)
            yield prev


def write_file(
    path: Path, messages: Sequence[list[Transition]], key: AuditKey, fig: Figures
) -> None:
    t0 = time.perf_counter()
    start = time.time() - sum(map(len, messages)) / 1000
    records = list(_records(messages, start))
    every = DEFAULT_CHECKPOINT_RECORDS
    checkpoints: list[Checkpoint] = [
        sign_checkpoint(key, gateway=GATEWAY, seq=r.seq, head_hash=r.hash, at=start + r.seq / 1000)
        for r in records[every - 1 :: every]
    ]
    bundles: dict[str, Any] = {}
    trusts: dict[str, Any] = {}
    for t in (t for steps in messages for t in steps):
        if t.evidence is not None:
            bundles.setdefault(evidence_digest(t.evidence[1]), t.evidence[1])
        if isinstance(t.audit, Reliance) and t.audit.trust is not None:
            trusts.setdefault(str(t.audit.trust_digest), t.audit.trust)
    with path.open("w", encoding="utf-8") as f:
        for line in write_export(
            records,
            checkpoints,
            key=key,
            gateway=GATEWAY,
            bundles=bundles.get,
            trusts=trusts.get,
            now=time.time(),
        ):
            f.write(line + "\n")
    fig.build_s = time.perf_counter() - t0
    fig.records = len(records)
    fig.export_bytes = path.stat().st_size


def verify(export: Path, key: AuditKey, pub: Path, fig: Figures) -> None:
    t0 = time.perf_counter()
    with export.open(encoding="utf-8") as f:
        report = verify_export(f, key.public_key)
    fig.verify_s = time.perf_counter() - t0
    if not report.ok:
        raise RuntimeError(f"the export did not verify: seq {report.bad_seq} [{report.problem}]")
    if report.records != fig.records:
        raise RuntimeError(f"verify_export saw {report.records} records, {fig.records} written")
    fig.bundles, fig.digest_only = report.bundles_verified, report.bundles_digest_only
    fig.checkpoints = report.checkpoints
    if fig.bundles == 0 or fig.digest_only:
        raise RuntimeError(
            f"{fig.bundles} bundles re-verified, {fig.digest_only} digest-only: every bundle "
            "should be re-verified under its recorded trust"
        )
    gateway = Path(sys.executable).parent / "gateway"
    command = [str(gateway)] if gateway.is_file() else [sys.executable, "-m", "gateway"]
    t0 = time.perf_counter()
    subprocess.run([*command, "--help"], check=True, capture_output=True)
    fig.cli_start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    done = subprocess.run(
        [*command, "audit", "verify", str(export), "--key", str(pub)],
        capture_output=True,
        text=True,
        check=False,
    )
    fig.cli_s = time.perf_counter() - t0
    fig.cli_output = done.stdout.strip() or done.stderr.strip()
    if done.returncode != 0:
        raise RuntimeError(f"gateway audit verify exited {done.returncode}: {fig.cli_output}")


# ---------------------------------------------------------------------------------------------
# Output


def _rate(count: int, seconds: float) -> str:
    return f"{count:,} in {seconds:.1f} s = {count / seconds:,.0f}/s"


def report(fig: Figures, pool: tuple[int, float], load: tuple[float, float]) -> None:
    sample, sample_s = pool
    on, off = fig.appends / fig.on_s, fig.appends / fig.off_s
    print(
        f"\n1. appends: SqliteStore on a file (WAL, synchronous=FULL), {IN_FLIGHT} messages in "
        f"flight, {PER_MESSAGE} transitions each, one audit record per transition"
    )
    print(f"  audit on, a checkpoint every 1,000 records: {_rate(fig.appends, fig.on_s)}")
    print(f"  audit off, the same transitions:            {_rate(fig.appends, fig.off_s)}")
    print(f"  checkpoints signed: {fig.store_checkpoints}")
    print(f"  ratio audit off / audit on, same run: {off / on:.2f}x")
    print(
        f"  SqliteStore.audit_export of those records (`gateway audit export`): "
        f"{fig.appends / fig.store_export_s:,.0f} records/s"
    )
    print(
        f"\n2. verify: an export of {fig.records:,} records ({fig.export_bytes / 1e6:,.1f} MB, "
        f"{fig.checkpoints} checkpoints; made and written in {fig.build_s:.1f} s); "
        f"{fig.bundles:,} distinct bundles re-verified by verifier/ under their recorded trust "
        f"(two per message), {fig.digest_only} digest-only"
    )
    print(
        f"  verify_export, in process: records {_rate(fig.records, fig.verify_s)}; "
        f"bundles {fig.bundles / fig.verify_s:,.1f}/s"
    )
    print(
        f"  gateway audit verify FILE --key PUB (subprocess): records "
        f"{_rate(fig.records, fig.cli_s)}; bundles {fig.bundles / fig.cli_s:,.1f}/s "
        f"(interpreter start, `gateway --help`: {fig.cli_start_s:.2f} s)"
    )
    print(f"    it printed: {fig.cli_output}")
    per_s = sample_s / sample
    print(
        f"  verify_bundle alone, {sample:,} of those bundles once each: {per_s * 1e6:,.0f} µs "
        f"per bundle ({1 / per_s:,.0f}/s): about {fig.bundles * per_s:.1f} s of each verify above"
    )
    print(f"\nload average (1 min): {load[0]:.2f} before, {load[1]:.2f} after")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records in the export")
    parser.add_argument(
        "--appends", type=int, default=20_000, help="records appended through the store"
    )
    parser.add_argument("--quick", action="store_true", help="a small run (smoke test)")
    args = parser.parse_args(argv)
    records, appended = (1_200, 1_200) if args.quick else (args.records, args.appends)
    if records < 1 or appended < 1:
        parser.error("--records and --appends must be positive")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    load_before = os.getloadavg()[0]
    print(f"audit benchmark: {describe_machine()}, SQLite {sqlite3.sqlite_version}")
    print(f"load average (1 min) {load_before:.2f}; other work on this machine skews the figures")
    t0 = time.perf_counter()
    messages, bundles = build_messages(records)
    built_s = time.perf_counter() - t0
    print(
        f"bundles: {len(bundles):,} for the export's {len(messages):,} messages (each one's "
        f"MessageSent and MessageDelivered, synthetic London blocks with real receipt proofs), "
        f"built in {built_s:.1f} s"
    )
    sample = bundles[:SAMPLE]
    t0 = time.perf_counter()
    for ev in sample:
        verify_bundle({**ev.bundle, "trust": ev.relied.trust})
    sample_s = time.perf_counter() - t0
    fig = Figures()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        folder = Path(tmp)
        asyncio.run(appends(folder, build_messages(appended)[0], fig))
        key = AuditKey.generate()
        key.save(folder / "audit.key", folder / "audit.pub")
        export = folder / "export.jsonl"
        write_file(export, messages, key, fig)
        verify(export, key, folder / "audit.pub", fig)
    report(fig, (len(sample), sample_s), (load_before, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
