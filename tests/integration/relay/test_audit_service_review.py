"""The attacker review of the audit trail (2026-12-03), AuditService side: one test per finding,
each failing on the code the review found and passing after the fix.

A peer's trace part is built as a malicious peer would send it, from a real trail (the
project's own fixture: records and checkpoints signed with the peer's key), and checked with
``verify_part``, what ``TraceMessage`` runs on a peer's answer. Finding 2: the wrong message's
records or an incomplete set shown as VERIFIED. Finding 4: one deeply nested line crashed the
gateway. Finding 6: a trace silently cut at MAX_TRACE_RECORDS. Finding 10: a malformed
checkpoint failed the whole trace.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from protos.interop.v1 import audit_pb2
from relay.audit import AuditKey, AuditLog, CheckpointPolicy, record_from_json
from relay.audit_guard import parse_checkpoint
from relay.grpc import audit_service as svc
from relay.sqlite_store import SqliteStore
from relay.store import Hop, RejectedAttempt, Role, State, Transition
from tests.unit.relay.test_audit import build_export
from verifier.messages import Message


def _x(lines: dict[int, str]) -> bytes:
    """Message 2 of the fixture: records seq 7..12 (observed .. acknowledged); checkpoints
    every 4."""
    return bytes.fromhex(json.loads(lines[7])["message_id"][2:])


def _trail(tmp_path: Path) -> tuple[AuditKey, dict[int, str], dict[int, str]]:
    key, _ = build_export(tmp_path, every=4)
    conn = sqlite3.connect(tmp_path / "audit.db")
    lines = {int(s): str(t) for s, t in conn.execute("SELECT seq, record FROM audit_records")}
    cps = {int(s): str(t) for s, t in conn.execute("SELECT seq, checkpoint FROM audit_checkpoints")}
    return key, lines, cps


def _part(
    key: AuditKey, lines: dict[int, str], cps: dict[int, str], shown: list[int], last: int
) -> audit_pb2.GatewayTrace:
    part = audit_pb2.GatewayTrace(gateway="gw-a")
    for s in shown:
        p = svc.record_to_proto(record_from_json(json.loads(lines[s])))
        p.message_id = _x(lines)  # the proto's copy, which the old check trusted
        part.records.append(p)
    part.segment_json.extend(lines[s] for s in range(shown[0], last + 1))
    cp = parse_checkpoint(json.loads(cps[last]))
    part.checkpoint.CopyFrom(svc.checkpoint_to_proto(cp, key.public_key))
    return part


def test_an_honest_part_verifies(tmp_path: Path) -> None:
    """The baseline: message 2's records 7..12, the segment to the checkpoint at 12."""
    key, lines, cps = _trail(tmp_path)
    assert (
        svc.verify_part(
            _part(key, lines, cps, list(range(7, 13)), 12), key.public_key, message_id=_x(lines)
        )
        is None
    )


def test_another_messages_records_are_not_verified(tmp_path: Path) -> None:
    """Finding 2a: records 5 and 6 (message 1) shown for message 2 with the proto's
    message_id rewritten: the ids come from record_json now."""
    key, lines, cps = _trail(tmp_path)
    problem = svc.verify_part(
        _part(key, lines, cps, [5, 6], 8), key.public_key, message_id=_x(lines)
    )
    assert problem is not None
    assert "another message" in problem


def test_omitted_records_of_the_message_are_not_verified(tmp_path: Path) -> None:
    """Finding 2b: the message's records 8 and 10 are in the segment but not shown."""
    key, lines, cps = _trail(tmp_path)
    problem = svc.verify_part(
        _part(key, lines, cps, [7, 9, 11, 12], 12), key.public_key, message_id=_x(lines)
    )
    assert problem is not None
    assert "not shown" in problem


def test_a_segment_not_starting_at_the_first_record_is_not_verified(tmp_path: Path) -> None:
    """Finding 2: the part starts at the message's 3rd record (7 and 8 hidden)."""
    key, lines, cps = _trail(tmp_path)
    part = _part(key, lines, cps, list(range(9, 13)), 12)
    part.segment_json.insert(0, lines[8])  # a segment from 8: a record of X before the shown
    problem = svc.verify_part(part, key.public_key, message_id=_x(lines))
    assert problem is not None


def test_a_malformed_peer_checkpoint_marks_only_that_part(tmp_path: Path) -> None:
    """Finding 10: a non-string signature, or a JSON array, raised TypeError/AttributeError
    out of the trace. Now it is the part's problem."""
    key, lines, cps = _trail(tmp_path)
    for bad in (
        '{"type":"checkpoint","v":1,"gateway":"gw-a","seq":12,"head_hash":"h","time":"t",'
        '"signature":5}',
        "[1]",
        '"x"',
    ):
        part = _part(key, lines, cps, list(range(7, 13)), 12)
        part.checkpoint.checkpoint_json = bad
        problem = svc.verify_part(part, key.public_key, message_id=_x(lines))
        assert problem is not None
        assert "checkpoint" in problem


def test_a_deeply_nested_peer_line_does_not_crash_the_gateway() -> None:
    """Finding 4: with relay.app imported (recursion limit 100000), json.loads of a 400 KB
    line of brackets overflowed the C stack: SIGSEGV. In a subprocess, as the gateway runs."""
    code = """
import relay.app  # raises the recursion limit, as `gateway run` does
from protos.interop.v1 import audit_pb2
from relay.audit import AuditKey
from relay.grpc import audit_service as svc
part = audit_pb2.GatewayTrace(gateway="gw-b")
deep = "[" * 200000 + "]" * 200000
part.records.add(seq=1, message_id=bytes(32), record_json=deep)
part.checkpoint.checkpoint_json = deep
part.segment_json.append(deep)
print("problem:", svc.verify_part(part, AuditKey.generate().public_key, message_id=bytes(32)))
"""
    run = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[3],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "problem: a line is not a record" in run.stdout


async def test_a_flooded_trace_says_truncated_and_keeps_every_state_change(tmp_path: Path) -> None:
    """Finding 6: past MAX_TRACE_RECORDS rejected attempts, the state changes recorded after
    them were cut and the trace still said VERIFIED with no sign of it."""
    key = AuditKey.generate()
    store = SqliteStore(tmp_path, audit_log=AuditLog("gw-a", key, CheckpointPolicy(100_000, 1e9)))
    await store.open()
    try:
        i = b"\x05" * 32
        m = Message("chain-a", b"\1" * 20, "chain-b", 1, b"\2" * 20, b"\3" * 20, b"p", 10_000)
        at = 1.7e9
        await store.transition(
            Transition(id=i, role=Role.SOURCE, to=State.OBSERVED, expect=None, at=at, message=m)
        )
        for n in range(svc.MAX_TRACE_RECORDS + 5):
            await store.record_rejected(
                RejectedAttempt(i, Role.SOURCE, Hop.MESSAGE_SENT, "proof", "bad", "gw-b", at + n)
            )
        await store.transition(
            Transition(
                id=i,
                role=Role.SOURCE,
                to=State.VERIFIED,
                expect=frozenset({State.OBSERVED}),
                at=at + 5000,
            )
        )
        servicer = svc.AuditServicer(store, gateway="gw-a", key=key)
        part = await servicer._own_part(i)
    finally:
        await store.close()
    assert part.truncated
    assert part.verified, part.problem
    kinds = [json.loads(r.record_json)["kind"] for r in part.records]
    assert kinds[0] == "fact_observed"
    assert kinds[-1] == "evidence_verified"
    assert len(part.records) == svc.MAX_TRACE_RECORDS + 1
