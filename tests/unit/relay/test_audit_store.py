"""The audit trail as the SQLite store writes it: one record per state change and rejected
attempt in the change's own transaction, append-only rows, count- and time-based checkpoints,
filtered queries, and a chain that a reopened store continues without gap or fork. Real SQLite
files under ``tmp_path``; exports are checked with ``relay.audit.verify_export``."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.audit import (
    AuditKey,
    AuditKind,
    AuditLog,
    CheckpointPolicy,
    format_time,
    verify_export,
)
from relay.sqlite_store import DB_NAME, SqliteStore
from relay.store import (
    AuditFilter,
    HistoryEntry,
    Hop,
    RejectedAttempt,
    Role,
    State,
    StoreError,
    Transition,
)
from verifier.messages import Message

GATEWAY = "gw-a"


def _msg(n: int, src: str = "chain-a", dst: str = "chain-b") -> Message:
    return Message(
        src_chain=src,
        src_gateway=b"\x01" * 20,
        dst_chain=dst,
        nonce=n,
        sender=b"\x02" * 20,
        receiver=b"\x03" * 20,
        payload=b"p%d" % n,
        timeout=10_000,
    )


def _id(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _insert(n: int, at: float, **kw: Any) -> Transition:
    return Transition(
        id=_id(n), role=Role.SOURCE, to=State.OBSERVED, expect=None, at=at, message=_msg(n), **kw
    )


def _move(n: int, frm: State, to: State, at: float) -> Transition:
    return Transition(id=_id(n), role=Role.SOURCE, to=to, expect=frozenset({frm}), at=at)


@pytest.fixture(name="key")
def _key() -> AuditKey:
    return AuditKey.generate()


def _store(path: Path, key: AuditKey, every: int = 1000, seconds: float = 60.0) -> SqliteStore:
    return SqliteStore(path, audit_log=AuditLog(GATEWAY, key, CheckpointPolicy(every, seconds)))


@pytest.fixture(name="store")
async def _open(tmp_path: Path, key: AuditKey) -> AsyncIterator[SqliteStore]:
    store = _store(tmp_path, key, every=3)
    await store.open()
    yield store
    await store.close()


async def _all(store: SqliteStore, flt: AuditFilter | None = None) -> list[Any]:
    records, _ = await store.audit_records(flt or AuditFilter(), limit=1000)
    return list(records)


async def test_every_state_change_and_rejection_has_its_record_in_order(
    store: SqliteStore,
) -> None:
    """Observed, verified, forwarded and a rejected attempt: four records, chained."""
    assert await store.transition(_insert(1, 100.0, height=7, tx_hash="0xaa"))
    assert await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.0))
    assert await store.transition(_move(1, State.VERIFIED, State.FORWARDED, 102.0))
    await store.record_rejected(
        RejectedAttempt(_id(1), Role.SOURCE, Hop.DELIVERY_RESULT, "quorum", "2 of 3", "gw-b", 103.0)
    )
    records = await _all(store)
    assert [r.kind for r in records] == [
        AuditKind.FACT_OBSERVED,
        AuditKind.EVIDENCE_VERIFIED,
        AuditKind.FORWARDED,
        AuditKind.ATTEMPT_REJECTED,
    ]
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert (records[0].height, records[0].tx_hash) == (7, "0xaa")
    rejected = records[3]
    assert (rejected.check, rejected.reason, rejected.peer) == ("quorum", "2 of 3", "gw-b")
    assert (rejected.src_chain, rejected.dst_chain, rejected.state) == (
        "chain-a",
        "chain-b",
        "forwarded",
    )


async def test_a_no_op_transition_writes_no_record(store: SqliteStore) -> None:
    assert await store.transition(_insert(1, 100.0))
    assert not await store.transition(_insert(1, 100.5))
    assert not await store.transition(_move(1, State.VERIFIED, State.FORWARDED, 101.0))
    assert len(await _all(store)) == 1


async def test_a_failing_record_rolls_the_state_change_back(tmp_path: Path, key: AuditKey) -> None:
    """Record and state share one transaction: when the record cannot be written, the state
    does not change either (and the reverse holds by the same transaction)."""
    log = AuditLog(GATEWAY, key)
    calls: list[int] = []

    def hook(conn: Any, t: Transition, entry: HistoryEntry) -> None:
        log.hook(conn, t, entry)
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error (simulated after the record)")

    store = SqliteStore(tmp_path, audit=hook, audit_log=log)
    await store.open()
    try:
        assert await store.transition(_insert(1, 100.0))
        with pytest.raises(StoreError):
            await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.0))
        row = await store.get(_id(1), Role.SOURCE)
        assert row is not None
        assert row.state is State.OBSERVED
        assert [r.kind for r in await _all(store)] == [AuditKind.FACT_OBSERVED]
        assert [h.state for h in await store.history(_id(1))] == [State.OBSERVED]
    finally:
        await store.close()


async def test_audit_rows_cannot_be_updated_or_deleted(store: SqliteStore, tmp_path: Path) -> None:
    assert await store.transition(_insert(1, 100.0))
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_records SET record = '{}' WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_records")
    finally:
        conn.close()
    assert len(await _all(store)) == 1


async def test_a_count_checkpoint_is_signed_with_the_record_that_reaches_it(
    store: SqliteStore, key: AuditKey
) -> None:
    """checkpoint_every = 3: the third record's transaction stores a checkpoint of seq 3."""
    assert await store.transition(_insert(1, 100.0))
    assert await store.transition(_insert(2, 100.0))
    assert await store.audit_checkpoint() is None
    assert await store.transition(_insert(3, 100.0))
    cp = await store.audit_checkpoint()
    assert cp is not None
    head = await store.audit_head()
    assert head is not None
    assert (cp.seq, cp.head_hash) == head
    assert cp.verify(key.public_key)
    assert cp.gateway == GATEWAY
    assert await store.audit_checkpoint(1) == cp
    assert await store.audit_checkpoint(4) is None


async def test_the_timer_checkpoint_signs_a_moved_head_once(tmp_path: Path, key: AuditKey) -> None:
    store = _store(tmp_path, key, every=1000, seconds=10.0)
    await store.open()
    try:
        assert await store.audit_checkpoint_due(1000.0) is None  # no records: nothing to sign
        assert await store.transition(_insert(1, 100.0))
        assert await store.audit_checkpoint_due(105.0) is None  # not yet 10 s
        cp = await store.audit_checkpoint_due(111.0)
        assert cp is not None
        assert cp.seq == 1
        assert await store.audit_checkpoint_due(200.0) is None  # the head did not move
    finally:
        await store.close()


async def test_queries_filter_and_page(store: SqliteStore) -> None:
    assert await store.transition(_insert(1, 100.0))
    assert await store.transition(
        Transition(
            id=_id(2),
            role=Role.SOURCE,
            to=State.OBSERVED,
            expect=None,
            at=200.0,
            message=_msg(2, src="chain-c", dst="chain-d"),
        )
    )
    assert await store.transition(_move(1, State.OBSERVED, State.VERIFIED, 300.0))
    assert await store.transition(_move(1, State.VERIFIED, State.REJECTED, 400.0))
    one = await _all(store, AuditFilter(message_id="0x" + _id(1).hex()))
    assert [r.seq for r in one] == [1, 3, 4]
    assert [r.seq for r in await _all(store, AuditFilter(chain="chain-d"))] == [2]
    assert [r.seq for r in await _all(store, AuditFilter(kind="evidence_verified"))] == [3]
    assert [r.seq for r in await _all(store, AuditFilter(state="rejected"))] == [4]
    assert [r.seq for r in await _all(store, AuditFilter(role="destination"))] == []
    window = AuditFilter(since=format_time(200.0), until=format_time(400.0))
    assert [r.seq for r in await _all(store, window)] == [2, 3]
    page, after = await store.audit_records(AuditFilter(), limit=3)
    assert ([r.seq for r in page], after) == ([1, 2, 3], 3)
    page, after = await store.audit_records(AuditFilter(), after=3, limit=3)
    assert ([r.seq for r in page], after) == ([4], None)
    assert list(await store.audit_lines(2, 3)) == [r.line() for r in (await _all(store))[1:3]]


async def test_a_reopened_store_continues_the_chain_and_the_export_verifies(
    tmp_path: Path, key: AuditKey
) -> None:
    first = _store(tmp_path, key, every=2)
    await first.open()
    assert await first.transition(_insert(1, 100.0))
    assert await first.transition(_move(1, State.OBSERVED, State.VERIFIED, 101.0))
    assert await first.transition(_insert(2, 102.0))
    await first.close()
    second = _store(tmp_path, key, every=2)
    await second.open()
    try:
        assert await second.transition(_move(2, State.OBSERVED, State.VERIFIED, 103.0))
        records = await _all(second)
        assert [r.seq for r in records] == [1, 2, 3, 4]
        assert records[3].prev_hash == records[2].hash
        lines = await second.audit_export(200.0)
        report = verify_export(lines, key.public_key)
        assert report.ok, report.detail
        assert (report.records, report.checkpoints) == (4, 2)
    finally:
        await second.close()


async def test_a_store_without_an_audit_log_writes_no_trail(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        assert await store.transition(_insert(1, 100.0))
        assert await _all(store) == []
        with pytest.raises(StoreError):
            await store.audit_export(1.0)
    finally:
        await store.close()
