"""The audit trail wired end to end without chains: a store process SIGKILL-ed while it writes
continues the chain after restart without gap or fork (and every state change has its record);
``gateway audit query/trace/export`` (the console script) against a real AuditService on
127.0.0.1, the export verified by ``gateway audit verify``; ``[audit]`` in the configuration and
in what ``gateway init`` writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from relay.audit import AuditKey, AuditLog, CheckpointPolicy, verify_export
from relay.config import ConfigError, load_config
from relay.crash import EXIT_CODE
from relay.grpc.audit_service import AuditServicer
from relay.grpc.auth import (
    AuthPolicy,
    Limits,
    Principal,
    PrincipalKind,
    TokenBinding,
    token_sha256,
)
from relay.grpc.server import GatewayServer, ServerTls, start_server
from relay.sqlite_store import DB_NAME, SqliteStore
from relay.store import Hop, RejectedAttempt, Role, State, Transition
from relay.tls import issue_cert, make_ca, write_cert_file
from tests.integration.relay.pipeline_env import Chains, describe, two_chains
from tests.integration.relay.test_pipeline_crash import closed, spawn
from verifier.messages import Message

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GATEWAY = str(Path(sys.executable).parent / "gateway")
WAIT_S = 60.0

_WRITER = """
import asyncio, sys
from pathlib import Path
from relay.audit import AuditKey, AuditLog, CheckpointPolicy
from relay.sqlite_store import SqliteStore
from relay.store import Role, State, Transition
from verifier.messages import Message

async def main(folder, start, count):
    key = AuditKey.load(Path(folder) / "audit.key")
    store = SqliteStore(Path(folder), audit_log=AuditLog("gw-k", key, CheckpointPolicy(7, 3600)))
    await store.open()
    for n in range(start, start + count):
        m = Message("chain-a", b"\\x01" * 20, "chain-b", n, b"\\x02" * 20, b"\\x03" * 20, b"x", 9)
        i = n.to_bytes(32, "big")
        await store.transition(Transition(i, Role.SOURCE, State.OBSERVED, None, 100.0, m))
        await store.transition(
            Transition(i, Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), 101.0)
        )
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def _records(folder: Path) -> int:
    conn = sqlite3.connect(folder / DB_NAME)
    try:
        (n,) = conn.execute("SELECT COUNT(*) FROM audit_records").fetchone()
        return int(n)
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


async def _writer(folder: Path, start: int, count: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WRITER, str(folder), str(start), str(count), cwd=ROOT
    )


async def test_a_sigkilled_writer_continues_the_chain_without_gap_or_fork(tmp_path: Path) -> None:
    key = AuditKey.generate()
    key.save(tmp_path / "audit.key", tmp_path / "audit.pub")
    proc = await _writer(tmp_path, 1, 1_000_000)
    loop = asyncio.get_running_loop()
    end = loop.time() + WAIT_S
    try:
        while _records(tmp_path) < 60:
            assert proc.returncode is None, "the writer exited early"
            assert loop.time() < end, "the writer wrote too few records"
            await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    again = await _writer(tmp_path, 10_000_000, 5)
    assert await asyncio.wait_for(again.wait(), WAIT_S) == 0

    store = SqliteStore(tmp_path, audit_log=AuditLog("gw-k", key))
    await store.open()
    try:
        lines = await store.audit_export(1e9)
    finally:
        await store.close()
    report = verify_export(lines, key.public_key)
    assert report.ok, f"{report.bad_seq} {report.problem} {report.detail}"
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        history = conn.execute(
            "SELECT lower(hex(id)), state FROM history WHERE kind='state' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    records = [json.loads(line) for line in lines if '"type":"audit-record"' in line]
    # State and record committed together: one record per state change, in the same order.
    assert [(r["message_id"][2:], r["state"]) for r in records] == [(i, s) for i, s in history]
    assert records[-1]["message_id"] == "0x" + (10_000_004).to_bytes(32, "big").hex()
    assert report.records == len(history)


# ---------------------------------------------------------------------------------------------
# A relay node (Anvil and the devnode) killed at a crash point, then restarted


@pytest.fixture(name="chains", scope="module")
async def _chains() -> AsyncIterator[Chains]:
    async with two_chains() as chains:
        yield chains


def _history_vs_records(folder: Path, lines: list[str]) -> None:
    """One record per state change, in the same order: state and record committed together."""
    conn = sqlite3.connect(folder / DB_NAME)
    try:
        history = conn.execute(
            "SELECT lower(hex(id)), role, state FROM history WHERE kind='state' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    records = [json.loads(line) for line in lines if '"type":"audit-record"' in line]
    states = [(r["message_id"][2:], r["role"], r["state"]) for r in records]
    assert [s for s, r in zip(states, records, strict=True) if r["kind"] != "attempt_rejected"] == [
        (i, role, state) for i, role, state in history
    ]


@pytest.mark.parametrize("point", ["after_verify", "mid_batch_persist"])
async def test_a_node_killed_at_a_crash_point_continues_the_chain(
    point: str, chains: Chains, tmp_path: Path
) -> None:
    """The node exits hard (``os._exit``, like SIGKILL) at ``point``, restarts on the same data
    folder and closes every message; the export of its trail verifies: no gap, no fork."""
    key = AuditKey.generate()
    key.save(tmp_path / "audit.key", tmp_path / "audit.pub")
    data = tmp_path / "data"
    d = await describe(chains, data, batch_wait=0.3)
    d["audit"] = {"key": str(tmp_path / "audit.key"), "every": 5}
    config = tmp_path / "node.json"
    config.write_text(json.dumps(d), encoding="utf-8")
    log = tmp_path / "node.log"
    evm, fisco = chains.evm.chain, chains.fisco.chain
    ids: list[bytes] = []
    for src, dst in ((evm, fisco), (fisco, evm)):
        now = (await chains.envs[dst].adapter.status()).timestamp
        for i in range(2):
            mid, _ = await chains.envs[src].adapter.send_message(
                dst, chains.echo[dst], f"{point} {i}".encode(), now + 3600
            )
            ids.append(mid)
    proc = await spawn(config, log, point)
    try:
        rc = await asyncio.wait_for(proc.wait(), WAIT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the node never reached {point}") from None
    assert rc == EXIT_CODE, f"exit status {rc}, see {log}"
    proc = await spawn(config, log, None)
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + WAIT_S
        while not await closed(data, ids):
            assert proc.returncode is None, f"the restarted node exited, see {log}"
            assert loop.time() < end, f"not every message closed after restart, see {log}"
            await asyncio.sleep(0.3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    store = SqliteStore(data, audit_log=AuditLog("node", key))
    await store.open()
    try:
        lines = await store.audit_export(1e9)
    finally:
        await store.close()
    report = verify_export(lines, key.public_key)
    assert report.ok, f"{report.bad_seq} {report.problem} {report.detail}"
    assert report.checkpoints >= 1
    _history_vs_records(data, lines)
    kinds = report.kinds
    for kind in ("fact_observed", "accepted_from_peer", "delivered", "acknowledged"):
        assert kinds.get(kind) == len(ids), kinds


# ---------------------------------------------------------------------------------------------
# The CLI against a real AuditService


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _msg(n: int) -> Message:
    return Message("chain-a", b"\x01" * 20, "chain-b", n, b"\x02" * 20, b"\x03" * 20, b"x", 9)


class Served:
    def __init__(
        self, server: GatewayServer, address: str, ca: Path, folder: Path, key: AuditKey
    ) -> None:
        self.server, self.address, self.ca, self.folder, self.key = (
            server,
            address,
            ca,
            folder,
            key,
        )


AUDITOR = "auditor-token-for-tests"
DEVELOPER = "developer-token-for-tests"
ID = (1).to_bytes(32, "big")


@pytest_asyncio.fixture(name="served")
async def _served(tmp_path: Path) -> AsyncIterator[Served]:
    ca_cert, ca_key = make_ca("test CA")
    cert, key_pem = issue_cert(ca_cert, ca_key, "gw-c")
    write_cert_file(tmp_path / "ca.crt", ca_cert)
    key = AuditKey.generate()
    key.save(tmp_path / "audit.key", tmp_path / "audit.pub")
    store = SqliteStore(tmp_path, audit_log=AuditLog("gw-c", key, CheckpointPolicy(2, 3600)))
    await store.open()
    await store.transition(Transition(ID, Role.SOURCE, State.OBSERVED, None, 100.0, _msg(1)))
    await store.transition(
        Transition(ID, Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), 101.0)
    )
    two = (2).to_bytes(32, "big")
    await store.transition(Transition(two, Role.SOURCE, State.OBSERVED, None, 102.0, _msg(2)))
    await store.record_rejected(
        RejectedAttempt(ID, Role.SOURCE, Hop.DELIVERY_RESULT, "quorum", "1 of 2", "gw-d", 103.0)
    )
    servicer = AuditServicer(store, gateway="gw-c", key=key)
    port, mutual = _free_port(), _free_port()
    server = await start_server(
        listen=f"127.0.0.1:{mutual}",
        token_listen=f"127.0.0.1:{port}",
        tls=ServerTls(cert, key_pem, [ca_cert]),
        auth=AuthPolicy(
            tokens=[
                TokenBinding(token_sha256(AUDITOR), Principal(PrincipalKind.AUDITOR, "carol")),
                TokenBinding(token_sha256(DEVELOPER), Principal(PrincipalKind.DEVELOPER, "bob")),
            ],
            limits=Limits(max_concurrent=8, rate_per_second=100.0, burst=100),
        ),
        relay_handler=None,
        interop_servicer=None,
        audit_servicer=servicer,
        max_concurrent_rpcs=16,
    )
    try:
        yield Served(server, f"127.0.0.1:{port}", tmp_path / "ca.crt", tmp_path, key)
    finally:
        servicer.close()
        await server.stop(None)
        await store.close()


async def _cli(served: Served, *args: str, token: str = AUDITOR) -> tuple[int, str, str]:
    env = {**os.environ, "GATEWAY_AUDIT_TOKEN": token}
    env.pop("GATEWAY_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        GATEWAY,
        "audit",
        *args,
        "--gateway",
        served.address,
        "--ca",
        str(served.ca),
        "--server-name",
        "localhost",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_query_prints_a_table_or_json_with_filters(served: Served) -> None:
    rc, out, err = await _cli(served, "query", "--message", "0x" + ID.hex(), "--json")
    assert rc == 0, err
    records = json.loads(out)
    assert [r["kind"] for r in records] == [
        "fact_observed",
        "evidence_verified",
        "attempt_rejected",
    ]
    rc, out, _ = await _cli(served, "query", "--kind", "attempt_rejected", "--json")
    assert [r["reason"] for r in json.loads(out)] == ["1 of 2"]
    rc, out, _ = await _cli(served, "query", "--since", "1970-01-01T00:01:42Z", "--json")
    assert [r["seq"] for r in json.loads(out)] == [3, 4]
    rc, out, _ = await _cli(served, "query", "--limit", "2")
    assert rc == 0
    assert "2 audit record(s)" in out
    assert "fact_observed" in out
    assert "evidence_verified" in out
    rc, _, err = await _cli(served, "query", "--kind", "teleported")
    assert rc == 2
    assert "--kind" in err


async def test_a_developer_token_is_refused(served: Served) -> None:
    rc, _, err = await _cli(served, "query", token=DEVELOPER)
    assert rc == 1
    assert "PERMISSION_DENIED" in err


async def test_trace_shows_the_local_part_verified(served: Served) -> None:
    rc, out, err = await _cli(served, "trace", "0x" + ID.hex(), "--json")
    assert rc == 0, err
    [part] = json.loads(out)["parts"]
    assert (part["gateway"], part["verified"], part["local"]) == ("gw-c", True, True)
    assert len(part["records"]) == 3
    rc, out, _ = await _cli(served, "trace", "0x" + ID.hex())
    assert rc == 0
    assert "VERIFIED against the checkpoint" in out
    rc, _, err = await _cli(served, "trace", "0x" + (9).to_bytes(32, "big").hex())
    assert rc == 1
    assert "NOT_FOUND" in err


async def test_export_then_verify_and_a_tampered_copy_fails(served: Served) -> None:
    out_file = served.folder / "export.jsonl"
    rc, _, err = await _cli(served, "export", "--out", str(out_file))
    assert rc == 0, err
    assert "exported 4 record(s)" in err
    pub = str(served.folder / "audit.pub")
    ok = subprocess.run(
        [GATEWAY, "audit", "verify", str(out_file), "--key", pub],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED" in ok.stdout
    lines = out_file.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if '"seq":3' in line and "audit-record" in line)
    lines[n] = lines[n].replace('"state":"observed"', '"state":"verified"')
    bad = served.folder / "tampered.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    failed = subprocess.run(
        [GATEWAY, "audit", "verify", str(bad), "--key", pub],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1
    assert "INVALID seq 3" in failed.stdout


# ---------------------------------------------------------------------------------------------
# Configuration


_CHAIN = (
    '[chains.a]\nfamily = "evm"\nendpoints = ["http://127.0.0.1:1"]\nchain_id = 1\n'
    'confirmations = 1\nrelayer_key = { env = "K" }\n'
)


def test_audit_section_problems_are_reported_with_their_paths(tmp_path: Path) -> None:
    (tmp_path / "not-a-key").write_text("hello")
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        '[audit]\nkey = "not-a-key"\ncheckpoint_every = 0\ncheckpoint_second = 5\n' + _CHAIN
    )
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    paths = {p.path for p in caught.value.problems}
    assert {"audit.checkpoint_every", "audit.checkpoint_second"} <= paths
    key = AuditKey.generate()
    key.save(tmp_path / "audit.key", tmp_path / "audit.pub")
    cfg.write_text(
        '[audit]\nkey = "audit.key"\ncheckpoint_every = 5\ncheckpoint_seconds = 2.5\n' + _CHAIN
    )
    loaded = load_config(cfg).audit
    assert (loaded.key, loaded.checkpoint_every, loaded.checkpoint_seconds) == (
        tmp_path / "audit.key",
        5,
        2.5,
    )
    cfg.write_text('[audit]\nkey = "not-a-key"\n' + _CHAIN)
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    assert [p.path for p in caught.value.problems] == ["audit.key"]


def test_init_writes_the_audit_section_and_an_auditor_token(tmp_path: Path) -> None:
    done = subprocess.run(
        [GATEWAY, "init", str(tmp_path / "gw"), "--name", "gw-i"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "auditor API token" in done.stdout
    written = tmp_path / "gw" / "gateway.toml"
    written.write_text(written.read_text() + _CHAIN)  # init leaves chains as comments
    config = load_config(written)
    assert config.audit.key == tmp_path / "gw" / "audit.key"
    assert oct((tmp_path / "gw" / "audit.key").stat().st_mode & 0o777) == "0o600"
    token = done.stdout.split("auditor API token", 1)[1].splitlines()[1].strip()
    roles = {c.role for c in config.api.tokens}
    assert roles == {"developer", "auditor"}
    auditor = config.api.token_credential(token)
    assert auditor is not None
    assert auditor.role == "auditor"
