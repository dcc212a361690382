"""The attacker review of the audit trail (2026-12-03), write side: one test per finding, each
failing on the code the review found and passing after the fix.

Finding 1: a database writer rewrote signed history (INSERT OR REPLACE past the append-only
triggers, checkpoints deleted) and the gateway signed the forgery. Finding 9: a 2**63-1 EVM
chain id stopped every verified transition of that chain when auditing was on.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from relay.audit import AuditKey, AuditLog, CheckpointPolicy, Reliance, canonical_json, sha256_hex
from relay.audit_guard import ANCHOR_FILE, AuditChainTampered
from relay.retry import Decision, classify
from relay.sqlite_store import SqliteStore
from relay.store import AuditFilter, Hop, Role, State, Transition
from relay.trust import ConfiguredTrustStore
from tests.unit.relay.test_audit import GATEWAY, _Writer, build_export
from tests.unit.relay.test_trust import CHAIN, GOOD, FakeReader, config
from verifier.messages import Message

_DROP_TRIGGERS = "SELECT name FROM sqlite_master WHERE type='trigger' AND name LIKE 'audit_%'"


def _rehashed_from(rows: list[tuple[int, str]], target: int) -> list[dict[str, object]]:
    """The records from ``target`` on, ``target`` rewritten and every later one re-hashed and
    re-linked: what a writer without the audit key can produce."""
    recs = [json.loads(text) for _, text in rows]
    recs[target - 1]["tx_hash"] = "0x" + "de" * 32
    prev = recs[target - 2]["hash"]
    for r in recs[target - 1 :]:
        r["prev_hash"] = prev
        r["hash"] = sha256_hex(canonical_json({k: v for k, v in r.items() if k != "hash"}))
        prev = r["hash"]
    return recs[target - 1 :]


def _rewrite(conn: sqlite3.Connection, target: int, *, drop_triggers: bool) -> None:
    rows = conn.execute("SELECT seq, record FROM audit_records ORDER BY seq").fetchall()
    conn.execute("BEGIN IMMEDIATE")
    if drop_triggers:
        for (name,) in conn.execute(_DROP_TRIGGERS).fetchall():
            conn.execute(f"DROP TRIGGER {name}")
    for r in _rehashed_from(rows, target):
        conn.execute(
            "INSERT OR REPLACE INTO audit_records (seq, hash, record) VALUES (?,?,?)",
            (r["seq"], r["hash"], canonical_json(r).decode()),
        )
    conn.execute("DELETE FROM audit_checkpoints WHERE seq >= ?", (target,))
    conn.execute("COMMIT")


def _one_more(conn: sqlite3.Connection, log: AuditLog, at: float) -> None:
    w = _Writer(conn, log)
    w.at = at
    w.step((1).to_bytes(32, "big"), Role.SOURCE, State.ACKNOWLEDGED, None)


def test_insert_or_replace_cannot_rewrite_a_record_under_the_triggers(tmp_path: Path) -> None:
    """Finding 1 (poc01 step 1): INSERT OR REPLACE replaced rows without firing the UPDATE or
    DELETE trigger. Now any insert at or below the head is refused and nothing changes."""
    build_export(tmp_path, every=4)
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    before = conn.execute("SELECT seq, hash FROM audit_records ORDER BY seq").fetchall()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        _rewrite(conn, 3, drop_triggers=False)
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT seq, hash FROM audit_records ORDER BY seq").fetchall() == before


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM audit_checkpoints WHERE seq >= 3",
        "UPDATE audit_checkpoints SET checkpoint = '{}'",
        "INSERT INTO audit_checkpoints (seq, at, checkpoint) VALUES (1, 0, '{}')",
        "DELETE FROM audit_evidence",
        "UPDATE audit_trust SET trust = '{}'",
        "DELETE FROM audit_trust",
    ],
)
def test_checkpoints_evidence_and_trust_are_append_only(tmp_path: Path, sql: str) -> None:
    """Finding 1: audit_checkpoints (and the evidence and trust tables) had no trigger."""
    build_export(tmp_path, every=4)
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(sql)


def test_a_bundle_cannot_be_replaced_by_its_digest(tmp_path: Path) -> None:
    """Finding 1: INSERT OR REPLACE of a stored digest keeps the first content."""
    build_export(tmp_path, every=4)
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    digest, bundle = conn.execute("SELECT digest, bundle FROM audit_evidence LIMIT 1").fetchone()
    conn.execute(
        "INSERT OR REPLACE INTO audit_evidence (digest, bundle) VALUES (?, '{}')", (digest,)
    )
    assert conn.execute(
        "SELECT bundle FROM audit_evidence WHERE digest=?", (digest,)
    ).fetchone() == (bundle,)


def _trail(tmp_path: Path) -> tuple[AuditKey, sqlite3.Connection, AuditLog, Path]:
    """A trail of 21 records, checkpoints every 4, signed by a log keeping its anchor file."""
    key, _ = build_export(tmp_path, every=4)
    anchor = tmp_path / ANCHOR_FILE
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    log = AuditLog(GATEWAY, key, CheckpointPolicy(4, 10_000), state_path=anchor)
    # The log that wrote the trail (build_export's) is gone: a restarted gateway signs once,
    # and from then on knows what it signed.
    for n in range(7):  # checkpoints at 24 and 28: the one at 24, found stored, is the anchor
        _one_more(conn, log, 1_700_000_100.0 + n)
    return key, conn, log, anchor


def test_the_gateway_refuses_to_sign_a_rewritten_chain(tmp_path: Path) -> None:
    """Finding 1 (poc01 steps 3-4): with the triggers dropped, seq 3 rewritten, the chain after
    it re-hashed and the checkpoints deleted, the gateway signed an export-end and a fresh
    checkpoint over the forgery. Now both refuse (AuditChainTampered), whether the same process
    or a restarted one (the anchor file in the data folder) goes on."""
    key, conn, log, anchor = _trail(tmp_path)
    assert json.loads(anchor.read_text())["seq"] == 24
    _rewrite(conn, 3, drop_triggers=True)
    with pytest.raises(AuditChainTampered) as caught:
        list(log.export_lines(conn, now=1_700_000_300.0))
    assert caught.value.seq == 24  # re-hashed: the first difference is at what was signed here
    with pytest.raises(AuditChainTampered):
        _one_more(conn, log, 1_700_000_400.0)  # a checkpoint is due (they were deleted): refused
    conn.execute("ROLLBACK")
    restarted = AuditLog(GATEWAY, key, CheckpointPolicy(4, 10_000), state_path=anchor)
    with pytest.raises(AuditChainTampered):
        _one_more(conn, restarted, 1_700_000_500.0)


def test_a_truncated_chain_is_not_signed(tmp_path: Path) -> None:
    """Finding 1: records deleted after the last signed checkpoint (triggers dropped)."""
    _, conn, log, _ = _trail(tmp_path)
    head = conn.execute("SELECT MAX(seq) FROM audit_records").fetchone()[0]
    for (name,) in conn.execute(_DROP_TRIGGERS).fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DELETE FROM audit_records WHERE seq > ?", (head - 6,))  # below the anchor
    with pytest.raises(AuditChainTampered):
        list(log.export_lines(conn, now=1_700_000_300.0))


def test_a_checkpoint_rolled_back_with_its_records_is_no_anchor(tmp_path: Path) -> None:
    """The guard remembers a checkpoint only once it is found stored: a checkpoint signed in
    a transaction that rolled back must not make the next check fail (no false alarm)."""
    key, _ = build_export(tmp_path, every=4)
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    log = AuditLog(GATEWAY, key, CheckpointPolicy(1, 10_000))  # one after every record
    i = (1).to_bytes(32, "big")
    w = _Writer(_NoTx(conn), log)  # type: ignore[arg-type]
    w.at = 1_700_000_100.0
    conn.execute("BEGIN IMMEDIATE")
    w.step(i, Role.SOURCE, State.ACKNOWLEDGED, None)  # a checkpoint at the new head...
    conn.execute("ROLLBACK")  # ...rolled back with it
    w.conn = conn
    w.step(i, Role.SOURCE, State.ACKNOWLEDGED, None, error="x")  # that seq, another record
    w.step(i, Role.SOURCE, State.ACKNOWLEDGED, None)
    lines = list(log.export_lines(conn, now=1_700_000_300.0))
    assert json.loads(lines[-1])["type"] == "export-end"
    assert conn.execute("SELECT COUNT(*) FROM audit_checkpoints WHERE seq > 21").fetchone() == (2,)


class _NoTx:
    """The connection, with the writer's BEGIN/COMMIT left to the test."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql in ("BEGIN IMMEDIATE", "COMMIT"):
            return None
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_a_tampered_chain_stops_the_relay_never_a_retry() -> None:
    """Finding 1: the typed error means STOP (relay/retry.py), not retry for ever."""
    assert classify(AuditChainTampered(3, "rewritten")) is Decision.STOP


async def test_a_huge_evm_chain_id_does_not_stop_audited_transitions(tmp_path: Path) -> None:
    """Finding 9: the EVM trust summary copied chain_id (config allows 2**63-1) into the audit
    record, which refuses integers beyond 2**53-1: every verified transition rolled back."""
    big = 2**63 - 1
    trust = ConfiguredTrustStore(
        {CHAIN: config(1, chain_id=big)}, readers={CHAIN: [FakeReader("a", chain_id=big)]}
    )
    root = await trust.root_for(CHAIN, height=50, block_hash=GOOD)
    store = SqliteStore(tmp_path, audit_log=AuditLog("gw-a", AuditKey.generate()))
    await store.open()
    try:
        i = b"\x01" * 32
        m = Message(CHAIN, b"\1" * 20, "chain-b", 1, b"\2" * 20, b"\3" * 20, b"p", 10_000)
        await store.transition(
            Transition(
                id=i,
                role=Role.SOURCE,
                to=State.OBSERVED,
                expect=None,
                at=1.7e9,
                message=m,
                evidence=(Hop.MESSAGE_SENT, {"x": 1}, "rpc-1"),
            )
        )
        await store.transition(
            Transition(
                id=i,
                role=Role.SOURCE,
                to=State.VERIFIED,
                expect=frozenset({State.OBSERVED}),
                at=1.7e9 + 1,
                audit=Reliance("ab" * 32, dict(root.trust), dict(root.summary)),
            )
        )
        row = await store.get(i, Role.SOURCE)
        assert row is not None
        assert row.state is State.VERIFIED
        records, _ = await store.audit_records(AuditFilter(), limit=10)
        assert records[-1].trust is not None
        assert records[-1].trust["chain_id"] == str(big)
    finally:
        await store.close()
