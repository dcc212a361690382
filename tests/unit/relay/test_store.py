"""The store conformance suite: every test runs against each store factory in ``FACTORIES``.

A server-database store adds its factory there and must pass the same tests. The SQLite store
runs on real files under ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from relay.pg_store import PostgresStore
from relay.sqlite_store import SqliteStore
from relay.store import (
    ATTEMPTS_KEPT,
    NEVER,
    Bounds,
    FencedError,
    Hop,
    MessageFilter,
    RejectedAttempt,
    Role,
    State,
    Store,
    Transition,
)
from tests import pg
from verifier.messages import DeliveryResult, DeliveryStatus, Message

StoreMaker = Callable[[Path, Bounds], Store]


def _sqlite(path: Path, bounds: Bounds) -> Store:
    return SqliteStore(path, bounds=bounds)


def _postgres(path: Path, bounds: Bounds) -> Store:
    """The session's PostgreSQL database (``tests/pg.py``; reset per test by ``make``): every
    store a test makes shares it, as replicas and a restarted gateway do."""
    del path
    return PostgresStore(pg.session_url(), bounds=bounds)


FACTORIES: dict[str, StoreMaker] = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(name="make", params=sorted(FACTORIES))
def _make(request: pytest.FixtureRequest) -> StoreMaker:
    """The store factory under test (PostgreSQL: a clean, migrated schema for each test)."""
    if request.param == "postgres":
        pg.fresh_url()
    return FACTORIES[request.param]


@pytest.fixture(name="store")
async def _store(make: StoreMaker, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store in a fresh directory."""
    store = make(tmp_path, Bounds(rejected_per_id=3, rejected_total=5))
    await store.open()
    yield store
    await store.close()


def msg(nonce: int = 1, src: str = "chain-a", dst: str = "chain-b") -> Message:
    return Message(
        src_chain=src,
        src_gateway=b"\x01" * 20,
        dst_chain=dst,
        nonce=nonce,
        sender=b"\x02" * 20,
        receiver=b"\x03" * 20,
        payload=b"payload-%d" % nonce,
        timeout=10_000,
    )


def mid(n: int) -> bytes:
    return n.to_bytes(32, "big")


def insert(
    id: bytes,
    m: Message,
    *,
    role: Role = Role.SOURCE,
    state: State = State.OBSERVED,
    at: float = 100.0,
    **kw: Any,
) -> Transition:
    return Transition(id=id, role=role, to=state, expect=None, at=at, message=m, **kw)


def move(
    id: bytes, frm: State, to: State, *, role: Role = Role.SOURCE, at: float = 200.0, **kw: Any
) -> Transition:
    return Transition(id=id, role=role, to=to, expect=frozenset({frm}), at=at, **kw)


async def test_insert_then_read_back_the_body_and_state(store: Store) -> None:
    """An inserted row reads back with its body, chains and state."""
    m = msg()
    assert await store.transition(insert(mid(1), m, height=7, tx_hash="0xaa"))
    rec = await store.get(mid(1), Role.SOURCE)
    assert rec is not None
    assert (rec.state, rec.message, rec.src_chain, rec.dst_chain) == (
        State.OBSERVED,
        m,
        "chain-a",
        "chain-b",
    )
    assert await store.get(mid(1), Role.DESTINATION) is None
    [entry] = await store.history(mid(1))
    assert (entry.state, entry.height, entry.tx_hash, entry.kind) == (
        State.OBSERVED,
        7,
        "0xaa",
        "state",
    )


async def test_a_duplicate_insert_or_a_stale_transition_is_a_no_op(store: Store) -> None:
    """Conditional changes: a repeated step changes nothing and writes no history."""
    assert await store.transition(insert(mid(1), msg()))
    assert not await store.transition(insert(mid(1), msg(2)))
    assert await store.transition(move(mid(1), State.OBSERVED, State.VERIFIED))
    assert not await store.transition(move(mid(1), State.OBSERVED, State.VERIFIED))
    assert not await store.transition(move(mid(1), State.OBSERVED, State.REJECTED))
    rec = await store.get(mid(1), Role.SOURCE)
    assert rec is not None
    assert rec.state is State.VERIFIED
    assert rec.message == msg()
    assert [h.state for h in await store.history(mid(1))] == [State.OBSERVED, State.VERIFIED]


async def test_one_id_has_a_source_and_a_destination_row(store: Store) -> None:
    """A gateway serving both ends holds one row per role for the same id."""
    assert await store.transition(insert(mid(1), msg(), state=State.VERIFIED))
    assert await store.transition(
        insert(mid(1), msg(), role=Role.DESTINATION, state=State.VERIFIED)
    )
    rows = await store.get_any(mid(1))
    assert {r.role for r in rows} == {Role.SOURCE, Role.DESTINATION}
    assert await store.transition(
        move(mid(1), State.VERIFIED, State.DELIVERY_SUBMITTED, role=Role.DESTINATION)
    )
    src = await store.get(mid(1), Role.SOURCE)
    assert src is not None
    assert src.state is State.VERIFIED


async def test_result_and_ack_status_are_kept(store: Store) -> None:
    """A result recorded with a change stays on the row; later changes keep it."""
    result = DeliveryResult(mid(1), "chain-b", b"\x09" * 20, DeliveryStatus.FAILED, b"oops")
    await store.transition(insert(mid(1), msg(), state=State.FORWARDED))
    await store.transition(move(mid(1), State.FORWARDED, State.RESULT_VERIFIED, result=result))
    await store.transition(
        move(mid(1), State.RESULT_VERIFIED, State.ACKNOWLEDGED, ack_status=DeliveryStatus.FAILED)
    )
    rec = await store.get(mid(1), Role.SOURCE)
    assert rec is not None
    assert (rec.result, rec.ack_status) == (result, DeliveryStatus.FAILED)


async def test_evidence_is_kept_once_per_hop(store: Store) -> None:
    """The first bundle of a hop stays; another copy for the same hop is ignored."""
    await store.transition(insert(mid(1), msg(), evidence=(Hop.MESSAGE_SENT, {"n": 1}, "http://a")))
    await store.transition(
        insert(
            mid(1),
            msg(),
            role=Role.DESTINATION,
            state=State.VERIFIED,
            evidence=(Hop.MESSAGE_SENT, {"n": 2}, "http://b"),
        )
    )
    await store.transition(
        move(
            mid(1),
            State.VERIFIED,
            State.DELIVERED,
            role=Role.DESTINATION,
            evidence=(Hop.DELIVERY_RESULT, {"r": 1}, "http://c"),
        )
    )
    ev = {e.hop: e for e in await store.evidence(mid(1))}
    assert ev[Hop.MESSAGE_SENT].bundle == {"n": 1}
    # Only an explicit replacement (a refetched bundle that verified) overwrites a hop.
    await store.transition(
        Transition(
            mid(1),
            Role.SOURCE,
            State.VERIFIED,
            frozenset({State.OBSERVED}),
            at=300,
            evidence=(Hop.MESSAGE_SENT, {"n": 3}, "http://d"),
            replace_evidence=True,
        )
    )
    ev = {e.hop: e for e in await store.evidence(mid(1))}
    assert (ev[Hop.MESSAGE_SENT].bundle, ev[Hop.MESSAGE_SENT].endpoint) == ({"n": 3}, "http://d")
    assert ev[Hop.DELIVERY_RESULT].bundle == {"r": 1}
    assert ev[Hop.DELIVERY_RESULT].endpoint == "http://c"


async def test_attempts_record_errors_and_delay_the_next_try(store: Store) -> None:
    """A failed attempt leaves the state, counts, keeps the error and sets the next try."""
    await store.transition(insert(mid(1), msg(), state=State.VERIFIED))
    assert await store.record_attempt(
        mid(1), Role.SOURCE, state=State.VERIFIED, error="peer down", next_try_at=500, at=150
    )
    assert await store.record_attempt(
        mid(1), Role.SOURCE, state=State.VERIFIED, error="x" * 5000, next_try_at=600, at=160
    )
    assert not await store.record_attempt(
        mid(1), Role.SOURCE, state=State.FORWARDED, error="no", next_try_at=1, at=1
    )
    rec = await store.get(mid(1), Role.SOURCE)
    assert rec is not None
    assert (rec.state, rec.attempts, rec.next_try_at) == (State.VERIFIED, 2, 600)
    assert rec.last_error is not None
    assert len(rec.last_error) <= 512
    hist = await store.history(mid(1))
    assert [h.kind for h in hist] == ["state", "attempt", "attempt"]
    assert hist[1].error == "peer down"
    # A state change resets the attempts of the new stage.
    await store.transition(move(mid(1), State.VERIFIED, State.FORWARDED))
    rec = await store.get(mid(1), Role.SOURCE)
    assert rec is not None
    assert (rec.attempts, rec.last_error) == (0, None)


async def test_attempt_history_keeps_the_newest_per_state(store: Store) -> None:
    """A message retried for days keeps ATTEMPTS_KEPT attempt rows per state, the newest;
    ``attempts`` counts every one, and other states' rows are untouched."""
    await store.transition(insert(mid(1), msg(), state=State.VERIFIED))
    for i in range(ATTEMPTS_KEPT * 4):
        assert await store.record_attempt(
            mid(1), Role.SOURCE, state=State.VERIFIED, error=f"e{i}", next_try_at=1, at=150 + i
        )
    await store.transition(insert(mid(1), msg(), role=Role.DESTINATION, state=State.VERIFIED))
    await store.record_attempt(
        mid(1), Role.DESTINATION, state=State.VERIFIED, error="d", next_try_at=1, at=300
    )
    rec = await store.get(mid(1), Role.SOURCE)
    assert rec is not None
    assert rec.attempts == ATTEMPTS_KEPT * 4
    hist = await store.history(mid(1))
    src = [h.error for h in hist if h.kind == "attempt" and h.role is Role.SOURCE]
    assert src == [f"e{i}" for i in range(ATTEMPTS_KEPT * 3, ATTEMPTS_KEPT * 4)]
    assert [h.error for h in hist if h.role is Role.DESTINATION and h.kind == "attempt"] == ["d"]
    assert [h.kind for h in hist].count("state") == 2


async def test_a_verified_refetch_replaces_body_evidence_and_locator(store: Store) -> None:
    """replace_message and replace_evidence swap what a lying endpoint served for what
    verified; the fact locator is kept with the transition or on its own."""
    tampered, genuine = replace(msg(), payload=b"tampered"), msg()
    locator = {"kind": "message_sent", "chain": "chain-a", "height": 3}
    await store.transition(
        insert(mid(1), tampered, evidence=(Hop.MESSAGE_SENT, {"v": 1}, "e1"), fact=locator)
    )
    assert await store.fact(mid(1), Hop.MESSAGE_SENT) == locator
    assert await store.fact(mid(1), Hop.DELIVERY_RESULT) is None
    again = {**locator, "endpoint": "e2"}
    assert await store.transition(
        move(
            mid(1),
            State.OBSERVED,
            State.VERIFIED,
            message=genuine,
            replace_message=True,
            evidence=(Hop.MESSAGE_SENT, {"v": 2}, "e2"),
            replace_evidence=True,
            fact=again,
        )
    )
    rec = await store.get(mid(1), Role.SOURCE)
    assert rec is not None
    assert rec.message == genuine
    [ev] = await store.evidence(mid(1))
    assert (ev.bundle, ev.endpoint) == ({"v": 2}, "e2")
    assert await store.fact(mid(1), Hop.MESSAGE_SENT) == again
    # Without replace_message a transition's message (for logs) leaves the body alone.
    assert await store.transition(move(mid(1), State.VERIFIED, State.FORWARDED, message=tampered))
    rec = await store.get(mid(1), Role.SOURCE)
    assert rec is not None
    assert rec.message == genuine
    await store.save_fact(mid(1), Hop.DELIVERY_RESULT, {"bundle": {"b": 1}})
    assert await store.fact(mid(1), Hop.DELIVERY_RESULT) == {"bundle": {"b": 1}}


async def test_due_work_is_ordered_bounded_and_waits_for_next_try(store: Store) -> None:
    """The outbound queue: rows of a stage whose next try has come, oldest first."""
    for n in range(5):
        await store.transition(
            insert(
                mid(n),
                msg(n, dst="chain-c" if n == 4 else "chain-b"),
                role=Role.DESTINATION,
                state=State.VERIFIED,
                at=float(n),
            )
        )
    await store.record_attempt(
        mid(0), Role.DESTINATION, state=State.VERIFIED, error="later", next_try_at=1000, at=5
    )
    await store.record_attempt(
        mid(1), Role.DESTINATION, state=State.VERIFIED, error="never", next_try_at=NEVER, at=5
    )
    due = await store.due(Role.DESTINATION, frozenset({State.VERIFIED}), 100, limit=10)
    assert [r.id for r in due] == [mid(2), mid(3), mid(4)]
    due = await store.due(
        Role.DESTINATION, frozenset({State.VERIFIED}), 100, chain="chain-b", limit=10
    )
    assert [r.id for r in due] == [mid(2), mid(3)]
    due = await store.due(Role.DESTINATION, frozenset({State.VERIFIED}), 2000, limit=2)
    assert [r.id for r in due] == [mid(2), mid(3)]
    due = await store.due(Role.DESTINATION, frozenset({State.VERIFIED}), 2000, limit=10)
    assert mid(0) in [r.id for r in due]
    assert mid(1) not in [r.id for r in due]
    assert await store.due(Role.SOURCE, frozenset({State.VERIFIED}), 2000) == ()
    assert await store.count(Role.DESTINATION, frozenset({State.VERIFIED})) == 5


async def test_list_filters_and_keyset_pagination(store: Store) -> None:
    """Filters by chain, state, role and time; pages follow the keyset without gaps."""
    for n in range(7):
        await store.transition(
            insert(mid(n), msg(n, dst="chain-c" if n % 2 else "chain-b"), at=float(10 * n))
        )
    await store.transition(move(mid(2), State.OBSERVED, State.REJECTED))
    seen: list[bytes] = []
    after: int | None = None
    while True:
        page = await store.list_messages(MessageFilter(), after=after, limit=3)
        seen.extend(r.id for r in page.items)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [mid(n) for n in range(7)]
    odd = await store.list_messages(MessageFilter(dst_chain="chain-c"))
    assert [r.id for r in odd.items] == [mid(1), mid(3), mid(5)]
    rej = await store.list_messages(MessageFilter(states=frozenset({State.REJECTED})))
    assert [r.id for r in rej.items] == [mid(2)]
    window = await store.list_messages(MessageFilter(since=20, until=40, src_chain="chain-a"))
    assert [r.id for r in window.items] == [mid(2), mid(3)]
    none = await store.list_messages(MessageFilter(role=Role.DESTINATION))
    assert none.items == ()
    assert none.next_after is None


async def test_changes_since_a_sequence_resume_without_gaps(store: Store) -> None:
    """WatchMessages resumes from a sequence number: state changes only, in order."""
    await store.transition(insert(mid(1), msg()))
    await store.transition(insert(mid(2), msg(2)))
    await store.record_attempt(
        mid(1), Role.SOURCE, state=State.OBSERVED, error="retry", next_try_at=0, at=101
    )
    await store.transition(move(mid(1), State.OBSERVED, State.VERIFIED))
    changes = await store.changes_since(0)
    assert [(c.id, c.state) for c in changes] == [
        (mid(1), State.OBSERVED),
        (mid(2), State.OBSERVED),
        (mid(1), State.VERIFIED),
    ]
    assert changes[0].src_chain == "chain-a"
    assert changes[0].dst_chain == "chain-b"
    rest = await store.changes_since(changes[1].seq)
    assert [(c.id, c.state) for c in rest] == [(mid(1), State.VERIFIED)]
    assert await store.changes_since(changes[-1].seq) == ()


async def test_stuck_messages_show_age_stage_attempts_and_error(store: Store) -> None:
    """A row not changing state for the threshold is stuck; terminal rows never are."""
    await store.transition(insert(mid(1), msg(), state=State.VERIFIED, at=100))
    await store.transition(insert(mid(2), msg(2), state=State.VERIFIED, at=100))
    await store.transition(move(mid(2), State.VERIFIED, State.REJECTED, at=100))
    await store.transition(insert(mid(3), msg(3), state=State.VERIFIED, at=900))
    await store.record_attempt(
        mid(1), Role.SOURCE, state=State.VERIFIED, error="link down", next_try_at=0, at=800
    )
    [stuck] = await store.stuck(1000, 300)
    assert (stuck.id, stuck.state, stuck.attempts, stuck.last_error) == (
        mid(1),
        State.VERIFIED,
        1,
        "link down",
    )
    assert stuck.age == 900


async def test_rejected_attempts_are_bounded(store: Store) -> None:
    """Requirement 19: at most rejected_per_id per id and rejected_total overall."""
    for i in range(6):
        await store.record_rejected(
            RejectedAttempt(
                mid(1), Role.DESTINATION, Hop.MESSAGE_SENT, "quorum", f"r{i}", "peer-x", float(i)
            )
        )
    kept = await store.rejected(mid(1))
    assert [r.reason for r in kept] == ["r3", "r4", "r5"]
    for n in range(2, 6):
        await store.record_rejected(
            RejectedAttempt(mid(n), Role.DESTINATION, Hop.MESSAGE_SENT, "c", "r", "p", 10.0)
        )
    assert await store.rejected(mid(1)) == kept[2:]  # 5 in total: the oldest went
    # A rejected attempt never creates a message row (requirement 13).
    assert await store.get(mid(1), Role.DESTINATION) is None


async def test_cursors_persist_across_reopen(make: StoreMaker, tmp_path: Path) -> None:
    """Cursors and rows are durable: a reopened store (a restart) reads them back."""
    store = make(tmp_path, Bounds())
    await store.open()
    assert await store.get_cursor("chain-a") is None
    await store.set_cursor("chain-a", "c1", 1)
    await store.set_cursor("chain-a", "c2", 2)
    await store.transition(insert(mid(1), msg()))
    await store.close()
    again = make(tmp_path, Bounds())
    await again.open()
    try:
        assert await again.get_cursor("chain-a") == "c2"
        rec = await again.get(mid(1), Role.SOURCE)
        assert rec is not None
        assert rec.message == msg()
    finally:
        await again.close()


async def test_the_audit_hook_commits_or_rolls_back_with_the_change(tmp_path: Path) -> None:
    """The hook runs inside the transaction: if it fails, the state change is undone."""
    seen: list[tuple[bytes, State]] = []

    def audit(tx: Any, t: Transition, entry: Any) -> None:
        assert isinstance(tx, sqlite3.Connection)
        if t.to is State.REJECTED:
            raise RuntimeError("audit log unavailable")
        seen.append((t.id, entry.state))

    store = SqliteStore(tmp_path, audit=audit)
    await store.open()
    try:
        await store.transition(insert(mid(1), msg()))
        with pytest.raises(RuntimeError):
            await store.transition(move(mid(1), State.OBSERVED, State.REJECTED))
        rec = await store.get(mid(1), Role.SOURCE)
        assert rec is not None
        assert rec.state is State.OBSERVED
        assert [h.state for h in await store.history(mid(1))] == [State.OBSERVED]
        assert seen == [(mid(1), State.OBSERVED)]
    finally:
        await store.close()


async def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    """SQLite runs in WAL mode so that readers do not block the pipeline's writer."""
    store = SqliteStore(tmp_path)
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "relay.sqlite3")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_commits_are_durable_on_power_loss(tmp_path: Path) -> None:
    """synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss, and a
    lost "forwarded" or "submitted" leaves a message waiting on a step believed done."""
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        level = await store._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert level == 2  # FULL
    finally:
        await store.close()


async def test_a_cancelled_call_keeps_the_connection_until_its_work_is_done(
    make: StoreMaker, tmp_path: Path
) -> None:
    """Cancelling callers mid-write (a shutdown) never lets close() run under a running query,
    and each write is all or nothing: every row has exactly its history."""
    store = make(tmp_path, Bounds())
    await store.open()
    tasks = [asyncio.create_task(store.transition(insert(mid(n), msg(n)))) for n in range(50)]
    await asyncio.sleep(0)
    await asyncio.sleep(0.005)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await store.close()
    again = make(tmp_path, Bounds())
    await again.open()
    try:
        page = await again.list_messages(MessageFilter(), limit=100)
        for rec in page.items:
            assert [h.state for h in await again.history(rec.id)] == [State.OBSERVED]
        assert len(await again.changes_since(0)) == len(page.items)
    finally:
        await again.close()


# ---------------------------------------------------------------------------------------------
# Leases and fencing: one active replica per gateway (issue 10)

TTL = 0.3
"""A lease meant to run out during the test (held ones are taken for LONG)."""
LONG = 60.0


async def _expire(store: Store, name: str) -> None:
    """Wait (by the database's clock) until the lease ``name`` has expired."""
    for _ in range(100):
        held = await store.lease_holder(name)
        if held is None or held[2] <= 0:
            return
        await asyncio.sleep(max(0.02, held[2]))
    raise AssertionError(f"lease {name} never expired")


async def test_a_lease_is_renewed_by_its_holder_and_taken_over_after_expiry(
    store: Store,
) -> None:
    """Renewal keeps the token; a standby gets None while the lease runs and a higher token
    once it has expired; the old holder is then the one refused."""
    assert await store.lease_holder("gw") is None
    first = await store.acquire_lease("gw", "a", LONG)
    assert first is not None
    assert await store.acquire_lease("gw", "a", LONG) == first
    assert await store.acquire_lease("gw", "b", LONG) is None
    held = await store.lease_holder("gw")
    assert held is not None
    assert held[:2] == ("a", first)
    assert LONG - 30 < held[2] <= LONG
    assert await store.acquire_lease("gw", "a", TTL) == first  # a renewal sets a new expiry
    await _expire(store, "gw")
    second = await store.acquire_lease("gw", "b", LONG)
    assert second is not None
    assert second > first
    assert await store.acquire_lease("gw", "a", LONG) is None
    held = await store.lease_holder("gw")
    assert held is not None
    assert held[:2] == ("b", second)
    # Leases are per name: another gateway's is independent.
    assert await store.acquire_lease("other", "a", LONG) is not None


async def test_a_holder_that_lets_its_lease_expire_gets_a_new_token(store: Store) -> None:
    """Taken again after expiry, even by the same holder, the lease has a new token: writes
    fenced with the old one (a pipeline that should have stopped) are refused."""
    first = await store.acquire_lease("gw", "a", TTL)
    assert first is not None
    await _expire(store, "gw")
    again = await store.acquire_lease("gw", "a", TTL)
    assert again is not None
    assert again > first


async def test_release_lets_another_holder_take_over_at_once(store: Store) -> None:
    """A clean shutdown releases the lease: the standby need not wait for the expiry."""
    first = await store.acquire_lease("gw", "a", 60.0)
    assert first is not None
    assert await store.acquire_lease("gw", "b", 60.0) is None
    await store.release_lease("gw", "b")  # not the holder: changes nothing
    assert await store.acquire_lease("gw", "b", 60.0) is None
    await store.release_lease("gw", "a")
    held = await store.lease_holder("gw")
    assert held is not None
    assert held[2] <= 0
    taken = await store.acquire_lease("gw", "b", 60.0)
    assert taken is not None
    assert taken > first


async def test_a_fenced_store_writes_nothing_after_another_holder_took_over(
    make: StoreMaker, tmp_path: Path
) -> None:
    """Two replicas on one database: the first is fenced with its token; after the second
    took the lease over every write of the first raises FencedError and changes nothing."""
    old, new = make(tmp_path, Bounds()), make(tmp_path, Bounds())
    await old.open()
    await new.open()
    try:
        token = await old.acquire_lease("gw", "old", LONG)
        assert token is not None
        old.fence("gw", "old", token)
        assert await old.transition(insert(mid(1), msg()))
        await old.set_cursor("chain-a", "c1", 1.0)
        assert await old.acquire_lease("gw", "old", TTL) == token  # its last renewal
        await _expire(new, "gw")
        taken = await new.acquire_lease("gw", "new", 60.0)
        assert taken is not None
        assert taken > token
        writes: list[Any] = [
            old.transition(move(mid(1), State.OBSERVED, State.VERIFIED)),
            old.transition(insert(mid(2), msg(2))),
            old.record_attempt(
                mid(1), Role.SOURCE, state=State.OBSERVED, error="x", next_try_at=5.0, at=3.0
            ),
            old.record_rejected(
                RejectedAttempt(mid(1), Role.SOURCE, Hop.MESSAGE_SENT, "c", "r", "p", 4.0)
            ),
            old.save_fact(mid(1), Hop.MESSAGE_SENT, {"height": 1}),
            old.set_cursor("chain-a", "c2", 2.0),
        ]
        for write in writes:
            with pytest.raises(FencedError):
                await write
        rec = await new.get(mid(1), Role.SOURCE)
        assert rec is not None
        assert (rec.state, rec.attempts) == (State.OBSERVED, 0)
        assert await new.get(mid(2), Role.SOURCE) is None
        assert [h.state for h in await new.history(mid(1))] == [State.OBSERVED]
        assert await new.rejected(mid(1)) == ()
        assert await new.fact(mid(1), Hop.MESSAGE_SENT) is None
        assert await new.get_cursor("chain-a") == "c1"
        # Reads still work on the fenced replica (a standby serves the read API).
        assert await old.get_cursor("chain-a") == "c1"
        # The new holder, fenced with its own token, writes; unfenced (None) writes again.
        new.fence("gw", "new", taken)
        assert await new.transition(move(mid(1), State.OBSERVED, State.VERIFIED))
        old.fence("gw", "old", None)
        await old.set_cursor("chain-a", "c3", 3.0)
        assert await new.get_cursor("chain-a") == "c3"
    finally:
        await old.close()
        await new.close()


async def test_a_fenced_write_fails_once_the_lease_expired_unrenewed(store: Store) -> None:
    """An active replica that failed to renew must stop writing when its lease runs out,
    even before anyone else took over."""
    token = await store.acquire_lease("gw", "a", LONG)
    assert token is not None
    store.fence("gw", "a", token)
    await store.set_cursor("chain-a", "c1", 1.0)
    assert await store.acquire_lease("gw", "a", TTL) == token  # its last renewal
    await _expire(store, "gw")
    with pytest.raises(FencedError):
        await store.set_cursor("chain-a", "c2", 2.0)
    assert await store.get_cursor("chain-a") == "c1"
