"""End to end: the audit trail of two `gateway run` processes (the demo's cluster). A message
sent each way has one audit record per state change on each gateway (compared with the
developer API's timeline); `gateway audit trace` shows its whole path across both gateways,
each part verified; `gateway audit export` then `gateway audit verify` succeeds on each
gateway's export, and a tampered copy fails naming the first bad record."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devnet.demo import EVM_CHAIN, FISCO_CHAIN, DemoCluster, GatewayHandle
from devnet.demo_flow import Api
from protos.interop.v1 import interop_pb2
from tests.e2e.conftest import wait_finished

pytestmark = pytest.mark.integration

GATEWAY = str(Path(sys.executable).parent / "gateway")
STATE_NAMES = {
    v: k.removeprefix("MESSAGE_STATE_").lower() for k, v in interop_pb2.MessageState.items()
}
SOURCE_KINDS = [
    "fact_observed",
    "evidence_verified",
    "forwarded",
    "result_verified",
    "ack_submitted",
    "acknowledged",
]
DESTINATION_KINDS = ["accepted_from_peer", "delivery_submitted", "delivered", "result_forwarded"]


def _audit(handle: GatewayHandle, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_AUDIT_TOKEN": handle.auditor_token}
    env.pop("GATEWAY_TOKEN", None)
    return subprocess.run(
        [
            GATEWAY,
            "audit",
            *args,
            "--gateway",
            handle.api_listen,
            "--ca",
            str(handle.ca),
            "--server-name",
            "localhost",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _query(handle: GatewayHandle, mid: bytes) -> list[dict[str, Any]]:
    done = _audit(handle, "query", "--message", "0x" + mid.hex(), "--json", "--limit", "1000")
    assert done.returncode == 0, done.stderr
    records: list[dict[str, Any]] = json.loads(done.stdout)
    return records


async def _send_both_ways(cluster: DemoCluster, apis: dict[str, Api]) -> list[bytes]:
    ids = []
    for name, other in (("evm", "fisco"), ("fisco", "evm")):
        src, dst = cluster.gateways[name].chain, cluster.gateways[other].chain
        notary = cluster.contracts[dst].notary
        mid = await apis[name].send(src, dst, notary, os.urandom(32), 3600)
        await wait_finished(apis[name], [mid], alive=cluster.check_alive)
        ids.append(mid)
    return ids


@pytest.mark.timeout(400)
async def test_every_state_change_has_its_record_and_trace_and_export_verify(
    cluster: DemoCluster, apis: dict[str, Api], tmp_path: Path
) -> None:
    ids = await _send_both_ways(cluster, apis)
    # The closing records are written with the last state change; the destination closes
    # when the source accepted its result, so give the last transition a moment to land.
    for mid, (src_name, dst_name) in zip(ids, (("evm", "fisco"), ("fisco", "evm")), strict=True):
        src, dst = cluster.gateways[src_name], cluster.gateways[dst_name]
        for _ in range(60):
            dst_records = _query(dst, mid)
            if any(r["kind"] == "result_forwarded" for r in dst_records):
                break
            await asyncio.sleep(0.5)
        src_records = _query(src, mid)
        src_states = [r for r in src_records if r["kind"] != "attempt_rejected"]
        assert [r["kind"] for r in src_states] == SOURCE_KINDS, src_records
        dst_states = [r for r in dst_records if r["kind"] != "attempt_rejected"]
        assert [r["kind"] for r in dst_states] == DESTINATION_KINDS, dst_records
        # One record per state change in the gateway's own history, in the same order.
        for api, records, role in (
            (apis[src_name], src_states, "source"),
            (apis[dst_name], dst_states, "destination"),
        ):
            rows = await api.list(
                role=interop_pb2.ROLE_SOURCE if role == "source" else interop_pb2.ROLE_DESTINATION
            )
            assert any(bytes(r.id) == mid for r in rows)
            status = await api.get(mid)
            timeline = [STATE_NAMES[e.state] for e in status.timeline if e.kind == "state"]
            if status.role == (
                interop_pb2.ROLE_SOURCE if role == "source" else interop_pb2.ROLE_DESTINATION
            ):
                assert [r["state"] for r in records] == timeline
        assert src_states[0]["evidence_digest"]
        assert dst_states[0]["peer"] == src.name

        trace = _audit(src, "trace", "0x" + mid.hex(), "--json")
        assert trace.returncode == 0, trace.stdout + trace.stderr
        parts = json.loads(trace.stdout)["parts"]
        assert [(p["gateway"], p["local"], p["verified"]) for p in parts] == [
            (src.name, True, True),
            (dst.name, False, True),
        ]
        assert [r["kind"] for r in parts[1]["records"] if r["kind"] != "attempt_rejected"] == (
            DESTINATION_KINDS
        )
        shown = _audit(src, "trace", "0x" + mid.hex())
        assert shown.returncode == 0
        assert shown.stdout.count("VERIFIED against the checkpoint") == 2

    for name, handle in cluster.gateways.items():
        out = tmp_path / f"{name}.jsonl"
        exported = _audit(handle, "export", "--out", str(out))
        assert exported.returncode == 0, exported.stderr
        pub = str(handle.directory / "audit.pub")
        ok = subprocess.run(
            [GATEWAY, "audit", "verify", str(out), "--key", pub, "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        report = json.loads(ok.stdout)
        assert report["valid"]
        assert report["records"] >= 10
        # Every bundle a decision relied on is re-verified offline against the trust the
        # record names (the source's own fact and the peer's result; the destination's
        # forwarded message and its own result): none is checked by its digest alone.
        assert report["bundles_verified"] >= 4, report
        assert report["bundles_digest_only"] == 0, report
        lines = out.read_text().splitlines()
        positions = [i for i, line in enumerate(lines) if '"type":"audit-record"' in line]
        victim = positions[len(positions) // 2]
        seq = json.loads(lines[victim])["seq"]
        lines[victim] = lines[victim].replace('"role":"', '"role":"x', 1)
        bad = tmp_path / f"{name}-tampered.jsonl"
        bad.write_text("\n".join(lines) + "\n")
        failed = subprocess.run(
            [GATEWAY, "audit", "verify", str(bad), "--key", pub],
            capture_output=True,
            text=True,
            check=False,
        )
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert f"INVALID seq {seq} " in failed.stdout
    assert {EVM_CHAIN, FISCO_CHAIN} == {h.chain for h in cluster.gateways.values()}


KEEP = ("--keep-running", "--dir")


@pytest.mark.timeout(400)
def test_after_demo_keep_running_export_then_verify_succeeds(tmp_path: Path) -> None:
    """`gateway demo --keep-running`, then each gateway's auditor commands exactly as the demo
    prints them: `gateway audit export` then `gateway audit verify` succeeds; a copy with one
    record removed fails naming the first bad sequence number."""
    folder = tmp_path / "demo"
    err_file, out_file = tmp_path / "err", tmp_path / "out"
    with out_file.open("wb") as out, err_file.open("wb") as err:
        proc = subprocess.Popen(
            # --json: the totals go to stdout, progress and the instructions to stderr.
            [
                sys.executable,
                "-m",
                "gateway",
                "demo",
                "--json",
                "--messages",
                "1",
                *KEEP,
                str(folder),
            ],
            stdout=out,
            stderr=err,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        deadline = time.monotonic() + 300
        while "Ctrl-C stops it all" not in err_file.read_text():
            assert proc.poll() is None, err_file.read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo never reported that it keeps running"
            time.sleep(0.5)
        time.sleep(0.5)  # the rest of the instructions
        text = err_file.read_text()
        connections = re.findall(r"export GATEWAY_ADDRESS=(\S+) GATEWAY_CA=(\S+) ", text)
        tokens = re.findall(r"export GATEWAY_AUDIT_TOKEN=(\S+)", text)
        commands = re.findall(
            r"gateway audit export --out (\S+) && gateway audit verify (\S+) --key (\S+)", text
        )
        assert len(connections) == len(tokens) == len(commands) == 2, text[-3000:]
        for (address, ca), token, (export_to, verify_file, key) in zip(
            connections, tokens, commands, strict=True
        ):
            env = {
                **os.environ,
                "GATEWAY_ADDRESS": address,
                "GATEWAY_CA": ca,
                "GATEWAY_AUDIT_TOKEN": token,
            }
            env.pop("GATEWAY_TOKEN", None)
            exported = subprocess.run(
                [GATEWAY, "audit", "export", "--out", export_to],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=False,
            )
            assert exported.returncode == 0, exported.stderr
            verified = subprocess.run(
                [GATEWAY, "audit", "verify", verify_file, "--key", key],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=False,
            )
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert verified.stdout.startswith("VERIFIED")
            lines = (tmp_path / verify_file).read_text().splitlines()
            at = [i for i, line in enumerate(lines) if '"type":"audit-record"' in line]
            removed = json.loads(lines[at[2]])["seq"]
            del lines[at[2]]
            cut = tmp_path / f"cut-{verify_file}"
            cut.write_text("\n".join(lines) + "\n")
            failed = subprocess.run(
                [GATEWAY, "audit", "verify", str(cut), "--key", key],
                capture_output=True,
                text=True,
                check=False,
            )
            assert failed.returncode == 1, failed.stdout + failed.stderr
            assert f"INVALID seq {removed} " in failed.stdout
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
