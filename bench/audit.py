"""Audit-trail benchmark: `make bench` (sixth part) or `python -m bench.audit`.

Not a timed test; one run on this machine prints:

1. **Appends**: a source gateway's message lifecycle driven through the real ``SqliteStore``
   (a file in a temporary folder, WAL, ``synchronous=FULL``): observed (with its bundle),
   verified (with the trust it relied on), forwarded, result verified (with the result's bundle
   and trust), acknowledgement submitted, acknowledged; 64 messages in flight, as the pipeline
   keeps them. Every transition writes its audit record in the same transaction, and the
   ``AuditLog`` signs a checkpoint every 1,000 records (``CheckpointPolicy()``, the default).
   The same transitions are run again on a fresh store without an audit log, and the ratio of
   the two rates is the trail's cost.
2. **Verify**: the store's export (``SqliteStore.audit_export``, the lines ``gateway audit
   export`` writes) is written to a file and checked with ``verify_export`` in this process, then
   with ``gateway audit verify FILE --key audit.pub`` as a subprocess (the auditor's command,
   interpreter start included). Records per second, and distinct bundles re-verified by
   ``verifier/`` per second.

The bundles are real chain data read from ``../shared/vectors`` at run time (never copied into
the repository): every ERC-20 ``Transfer`` log of a successful receipt in the mainnet blocks
below is one EVM bundle (block header, receipt, the receipt's proof built with
``verifier.merkle.mpt`` from the block's receipts and checked against the header's
``receiptsRoot``, ``log_index``), verified under ``{"block_hash", "event"}`` exactly as
``relay.verify`` records an EVM verification (the gateway's event there is ``MessageSent``;
here it is ``Transfer``, the event these real logs carry). The results' bundles are the two real
FISCO BCOS 3.x blocks (WeCross block 60, keccak256 + secp256k1, 4 sealers; the SM3 + SM2 doc
chain's block 2, 3 sealers), verified under their sealer sets; on FISCO one seal proves up to
100 messages, so a result bundle shared by many messages is what the gateway sees there too.
The trust summaries (endpoint names, finality) are shaped like ``relay.trust``'s but invented.
Without ``../shared/vectors`` the benchmark says so and measures records without bundles.

Distinct (bundle, trust) pairs are verified once per export (``verify_export`` remembers
them), so the bundle figures are per distinct bundle; how many there were is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import os
import platform
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

from relay.audit import (
    AuditKey,
    AuditLog,
    CheckpointPolicy,
    Reliance,
    evidence_digest,
    verify_export,
)
from relay.sqlite_store import SqliteStore
from relay.store import Hop, Role, State, Transition
from verifier.errors import VerificationError
from verifier.evidence import verify_bundle
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.hashing import keccak256
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root
from verifier.messages import DeliveryResult, DeliveryStatus, Message, message_id

VECTORS: Final = Path(__file__).resolve().parents[2] / "shared" / "vectors"
EVM_BLOCKS: Final = (
    "evm/mainnet_14194126_london_receipts.json",
    "evm/mainnet_19432087_cancun_blob_receipts.json",
    "evm/mainnet_21925176_cancun_receipts_helios.json",
    "evm/mainnet_19432673_cancun_small_block.json",
)
TRANSFER_EVENT: Final = {
    "type": "event",
    "name": "Transfer",
    "anonymous": False,
    "inputs": [
        {"name": "from", "type": "address", "indexed": True},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
    ],
}
TRANSFER_TOPIC: Final = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
IN_FLIGHT: Final = 64
SRC_CHAIN: Final = "eth-mainnet"
DST_CHAIN: Final = "fisco-wecross"
GATEWAY: Final = "bench-gw"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A real bundle, as an endpoint served it, and what the gateway recorded relying on."""

    bundle: dict[str, Any]
    relied: Reliance


# ---------------------------------------------------------------------------------------------
# Real bundles from ../shared/vectors


def _evm_bundles(limit: int) -> Iterator[Evidence]:
    for rel in EVM_BLOCKS:
        path = VECTORS / rel
        if not path.is_file():
            print(f"  vector file not found: {path} (skipped)")
            continue
        v = json.loads(path.read_text(encoding="utf-8"))
        header, receipts = v["header"], v["receipts"]
        items = {receipt_key(int(r["transactionIndex"], 16)): encode_receipt(r) for r in receipts}
        if "0x" + compute_mpt_root(items).hex() != header["receiptsRoot"]:
            raise RuntimeError(f"{path}: the rebuilt receipts root is not the header's")
        for r in receipts:
            logs = [i for i, log in enumerate(r["logs"]) if _is_transfer(log)]
            if r.get("status") != "0x1" or not logs:
                continue
            key = receipt_key(int(r["transactionIndex"], 16))
            proof = ["0x" + node.hex() for node in compute_mpt_proof(items, key)]
            for index in logs:
                if limit <= 0:
                    return
                limit -= 1
                yield _evm_evidence(header, r, proof, index)


def _is_transfer(log: dict[str, Any]) -> bool:
    topics = log["topics"]
    return len(topics) == 3 and topics[0] == TRANSFER_TOPIC and len(log["data"]) == 66


def _evm_evidence(
    header: dict[str, Any], receipt: dict[str, Any], proof: list[str], index: int
) -> Evidence:
    height = int(header["number"], 16)
    bundle = {
        "format": "interop-evidence/1",
        "family": "evm",
        "chain_id": SRC_CHAIN,
        "crypto": "keccak256-secp256k1",
        "block": header,
        "receipt": receipt,
        "proof": proof,
        "log_index": index,
        "trust": {"block_hash": header["hash"]},
    }
    # relay.verify._relied_trust (EVM): the block hash the endpoints agreed on, and the event.
    trust = {"block_hash": header["hash"], "event": copy.deepcopy(TRANSFER_EVENT)}
    summary = {  # relay.trust's EVM summary; endpoint names and finality invented
        "family": "evm",
        "source": "endpoints",
        "chain_id": 1,
        "gateway": receipt["logs"][index]["address"],
        "height": height,
        "block_hash": header["hash"],
        "quorum": 2,
        "of": 3,
        "agreed": ["rpc-a", "rpc-b"],
        "final_head": height + 64,
        "finality": "finalized",
        "dissent": {},
    }
    return Evidence(bundle, Reliance(evidence_digest(bundle), trust, summary))


def _fisco_bundles() -> Iterator[Evidence]:
    cases = (
        ("fisco/wecross_bcos3_vectors.json", None, "block", "receipt", "keccak256-secp256k1"),
        (
            "fisco/fisco_doc_examples.json",
            "sm_chain",
            "block2_header",
            "deploy_receipt_block2",
            "sm3-sm2",
        ),
    )
    for rel, part, block_key, receipt_key_, crypto in cases:
        path = VECTORS / rel
        if not path.is_file():
            print(f"  vector file not found: {path} (skipped)")
            continue
        v = json.loads(path.read_text(encoding="utf-8"))
        if part is not None:
            v = v[part]
        block, receipt = v[block_key], v[receipt_key_]
        sealers = [{"node_id": pk.removeprefix("0x"), "weight": 1} for pk in block["sealerList"]]
        bundle = {
            "format": "interop-evidence/1",
            "family": "fisco-bcos-3",
            "chain_id": DST_CHAIN,
            "crypto": crypto,
            "block": block,
            "receipt": receipt,
            "proof": receipt["txReceiptProof"],
            "trust": {"sealers": sealers},
        }
        trust = {"sealers": sealers}
        summary = {  # relay.trust.fisco_root's summary shape
            "family": "fisco-bcos-3",
            "source": "configuration",
            "chain_id": "chain0",
            "group_id": "group0",
            "sealers": len(sealers),
            "total_weight": len(sealers),
        }
        yield Evidence(bundle, Reliance(evidence_digest(bundle), trust, summary))


def load_evidence(evm_limit: int) -> tuple[list[Evidence], list[Evidence], int]:
    """(EVM bundles, FISCO bundles, bundles dropped because they did not verify)."""
    if not VECTORS.is_dir():
        print(f"  {VECTORS} not found: records without evidence bundles only")
        return [], [], 0
    dropped = 0
    pools: tuple[list[Evidence], list[Evidence]] = ([], [])
    for pool, source in zip(pools, (_evm_bundles(evm_limit), _fisco_bundles()), strict=True):
        for ev in source:
            assert ev.relied.trust is not None
            try:
                verify_bundle({**ev.bundle, "trust": ev.relied.trust})
            except VerificationError as exc:
                dropped += 1
                print(f"  bundle dropped: [{exc.check}] {exc.reason}")
                continue
            pool.append(ev)
    return pools[0], pools[1], dropped


# ---------------------------------------------------------------------------------------------
# Appends: a source gateway's lifecycle through SqliteStore


def _transitions(
    n: int, at: float, sent: Evidence | None, result: Evidence | None
) -> list[Transition]:
    """The six state changes of message ``n`` on its source gateway (``relay/pipeline.py``)."""
    message = Message(
        SRC_CHAIN,
        b"\x01" * 20,
        DST_CHAIN,
        n,
        b"\x02" * 20,
        b"\x03" * 20,
        b"bench %d" % n,
        2_000_000_000,
    )
    id = message_id(message, keccak256)
    outcome = DeliveryResult(id, DST_CHAIN, b"\x04" * 20, DeliveryStatus.SUCCESS, b"")
    tx = "0x" + keccak256(id).hex()
    s = Role.SOURCE

    def move(to: State, frm: State, **kw: Any) -> Transition:
        return Transition(id, s, to, frozenset({frm}), at, **kw)

    sent_ev = (Hop.MESSAGE_SENT, sent.bundle, "rpc-a") if sent is not None else None
    result_ev = (Hop.DELIVERY_RESULT, result.bundle, "peer-b:node-1") if result else None
    return [
        Transition(
            id, s, State.OBSERVED, None, at, message, evidence=sent_ev, height=n, tx_hash=tx
        ),
        move(State.VERIFIED, State.OBSERVED, audit=sent.relied if sent else None),
        move(State.FORWARDED, State.VERIFIED),
        move(
            State.RESULT_VERIFIED,
            State.FORWARDED,
            result=outcome,
            evidence=result_ev,
            audit=result.relied if result else None,
        ),
        move(State.ACK_SUBMITTED, State.RESULT_VERIFIED, tx_hash=tx),
        move(State.ACKNOWLEDGED, State.ACK_SUBMITTED),
    ]


PER_MESSAGE: Final = 6


async def drive(store: SqliteStore, messages: Sequence[list[Transition]]) -> float:
    """Seconds to apply every message's transitions in order, ``IN_FLIGHT`` messages at a time."""
    queue = iter(messages)

    async def worker() -> None:
        for steps in queue:
            for t in steps:
                # Stamped when applied, as the pipeline does: the checkpoint policy's seconds
                # count from these times.
                if not await store.transition(dataclasses.replace(t, at=time.time())):
                    raise RuntimeError(f"transition to {t.to} refused")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return time.perf_counter() - t0


def build_messages(
    count: int, evm: Sequence[Evidence], fisco: Sequence[Evidence]
) -> list[list[Transition]]:
    at = time.time()
    return [
        _transitions(
            n,
            at,
            evm[n % len(evm)] if evm else None,
            fisco[n % len(fisco)] if fisco else None,
        )
        for n in range(count)
    ]


# ---------------------------------------------------------------------------------------------
# The run


@dataclass(slots=True)
class Figures:
    records: int = 0
    on_s: float = 0.0
    compared: int = 0
    """Records (= transitions) of the first messages, timed on their own with and without."""
    on_first_s: float = 0.0
    off_s: float = 0.0
    checkpoints: int = 0
    export_s: float = 0.0
    export_bytes: int = 0
    verify_s: float = 0.0
    bundles: int = 0
    digest_only: int = 0
    cli_s: float = 0.0
    cli_start_s: float = 0.0
    cli_output: str = ""


async def appends_and_export(
    folder: Path, messages: list[list[Transition]], compare: int, fig: Figures
) -> tuple[Path, AuditKey]:
    key = AuditKey.generate()
    key.save(folder / "audit.key", folder / "audit.pub")
    first, rest = messages[:compare], messages[compare:]
    store = SqliteStore(folder / "on", audit_log=AuditLog(GATEWAY, key, CheckpointPolicy()))
    await store.open()
    try:
        fig.on_first_s = await drive(store, first)
        fig.on_s = fig.on_first_s + await drive(store, rest)
        t0 = time.perf_counter()
        lines = await store.audit_export(time.time())
        export = folder / "export.jsonl"
        with export.open("w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        fig.export_s = time.perf_counter() - t0
    finally:
        await store.close()
    fig.records = len(messages) * PER_MESSAGE
    fig.compared = len(first) * PER_MESSAGE
    fig.export_bytes = export.stat().st_size
    del lines
    off = SqliteStore(folder / "off")
    await off.open()
    try:
        fig.off_s = await drive(off, first)
    finally:
        await off.close()
    return export, key


def verify(export: Path, key: AuditKey, folder: Path, fig: Figures) -> None:
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
    gateway = Path(sys.executable).parent / "gateway"
    command = [str(gateway)] if gateway.is_file() else [sys.executable, "-m", "gateway"]
    t0 = time.perf_counter()
    subprocess.run([*command, "--help"], check=True, capture_output=True)
    fig.cli_start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    done = subprocess.run(
        [*command, "audit", "verify", str(export), "--key", str(folder / "audit.pub")],
        capture_output=True,
        text=True,
        check=False,
    )
    fig.cli_s = time.perf_counter() - t0
    fig.cli_output = done.stdout.strip() or done.stderr.strip()
    if done.returncode != 0:
        raise RuntimeError(f"gateway audit verify exited {done.returncode}: {fig.cli_output}")


def _machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({model}), "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def _rate(count: int, seconds: float) -> str:
    return f"{count:,} in {seconds:.1f} s = {count / seconds:,.0f}/s"


def report(fig: Figures, pool: tuple[int, int, float], load: tuple[float, float]) -> None:
    evm, fisco, pool_s = pool
    on_first = fig.compared / fig.on_first_s
    off = fig.compared / fig.off_s
    print(
        f"\nappends: SqliteStore on a file (WAL, synchronous=FULL), {IN_FLIGHT} messages in "
        f"flight, {PER_MESSAGE} transitions each, one audit record per transition"
    )
    print(f"  audit on, checkpoint every 1,000 records: records {_rate(fig.records, fig.on_s)}")
    print(f"  checkpoints signed: {fig.checkpoints}")
    print(f"  the first {fig.compared:,} alone, audit on:  {on_first:,.0f} records/s")
    print(f"  the same transitions, audit off:        {off:,.0f} transitions/s")
    print(f"  ratio audit off / audit on, same run:   {off / on_first:.2f}x")
    print(
        f"\nexport: {fig.export_bytes / 1e6:,.1f} MB written in {fig.export_s:.1f} s "
        f"(SqliteStore.audit_export, as `gateway audit export`)"
    )
    print(
        f"\nverify: {fig.records:,} records; {fig.bundles:,} distinct bundles re-verified by "
        f"verifier/ under their recorded trust ({evm:,} EVM + {fisco} FISCO in the pool), "
        f"{fig.digest_only} digest-only"
    )
    print(
        f"  verify_export, in process:  records {_rate(fig.records, fig.verify_s)}; "
        f"bundles {fig.bundles / fig.verify_s:,.1f}/s"
    )
    print(
        f"  gateway audit verify FILE --key PUB (subprocess): records "
        f"{_rate(fig.records, fig.cli_s)}; bundles {fig.bundles / fig.cli_s:,.1f}/s "
        f"(interpreter start, `gateway --help`: {fig.cli_start_s:.2f} s)"
    )
    print(f"    it printed: {fig.cli_output}")
    if evm + fisco:
        print(
            f"  verify_bundle alone, each pool bundle once: "
            f"{pool_s / (evm + fisco) * 1e6:,.0f} µs per bundle"
        )
    print(f"\nload average (1 min): {load[0]:.2f} before, {load[1]:.2f} after")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.audit", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records", type=int, default=100_000, help="audit records to append and export"
    )
    parser.add_argument("--quick", action="store_true", help="a small run (smoke test)")
    args = parser.parse_args(argv)
    records = 1_200 if args.quick else max(args.records, PER_MESSAGE)
    count = records // PER_MESSAGE
    compare = min(count, 5_000 if not args.quick else count // 2)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    load_before = os.getloadavg()[0]
    print(f"audit benchmark: {_machine()}")
    print(f"load average (1 min) {load_before:.2f}; other work on this machine skews the figures")
    t0 = time.perf_counter()
    evm, fisco, dropped = load_evidence(40 if args.quick else 10**6)
    loaded_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for ev in (*evm, *fisco):
        verify_bundle({**ev.bundle, "trust": ev.relied.trust})
    pool_s = time.perf_counter() - t0
    print(
        f"bundles from {VECTORS}: {len(evm)} EVM (ERC-20 Transfer logs of "
        f"{len(EVM_BLOCKS)} mainnet blocks), {len(fisco)} FISCO BCOS, {dropped} dropped; "
        f"built in {loaded_s:.1f} s"
    )
    messages = build_messages(count, evm, fisco)
    fig = Figures()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        folder = Path(tmp)
        export, key = asyncio.run(appends_and_export(folder, messages, compare, fig))
        del messages
        verify(export, key, folder, fig)
    report(fig, (len(evm), len(fisco), pool_s), (load_before, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
