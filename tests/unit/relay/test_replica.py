"""The lease loop (relay/replica.py) against an in-memory lease table with a hand-moved clock:
take, renew, lose, fenced writes, release; and the standby's refusal of peer writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from relay.links import AckItem, ForwardItem, Verdict, VerdictKind
from relay.node import GatewayNode
from relay.replica import STANDBY_TOKEN, Replica, StandbyReplica, holder_name
from relay.retry import Decision, classify
from relay.sqlite_store import SqliteStore
from relay.store import FencedError, StoreError

LEASE = "gw-a"
TTL = 3.0


@dataclass
class Lease:
    holder: str
    token: int
    expires: float


@dataclass
class FakeLeaseStore:
    """The leases of SqliteStore/PostgresStore by a clock the test moves; records fences."""

    now: float = 0.0
    leases: dict[str, Lease] = field(default_factory=dict)
    fences: list[tuple[str, str, int | None]] = field(default_factory=list)
    fail: BaseException | None = None
    hang: asyncio.Event | None = None
    acquires: int = 0

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> int | None:
        self.acquires += 1
        if self.hang is not None:
            await self.hang.wait()
        if self.fail is not None:
            raise self.fail
        current = self.leases.get(name)
        if current is None:
            self.leases[name] = Lease(holder, 1, self.now + ttl)
            return 1
        live = current.expires > self.now
        if live and current.holder != holder:
            return None
        if not live:
            current.token += 1
        current.holder, current.expires = holder, self.now + ttl
        return current.token

    async def release_lease(self, name: str, holder: str) -> None:
        current = self.leases.get(name)
        if current is not None and current.holder == holder:
            current.expires = self.now

    def fence(self, name: str, holder: str, token: int | None) -> None:
        self.fences.append((name, holder, token))

    def fenced_for(self, holder: str) -> int | None:
        return [t for _, h, t in self.fences if h == holder][-1]


@dataclass
class FakeWork:
    """The active work: counts starts and stops; optionally spawns a task on start that
    raises ``raise_in_task`` through classify, as a pipeline stage does."""

    starts: int = 0
    stops: int = 0
    running: bool = False
    raise_in_task: BaseException | None = None
    taken_by: tuple[FakeLeaseStore, str] | None = None
    """(store, holder): the lease that holder took over, as happened when a write is fenced."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    drains: list[bool] = field(default_factory=list)
    slow_stop: asyncio.Event | None = None

    async def start(self) -> None:
        self.starts += 1
        self.running = True
        if self.raise_in_task is not None:
            self.tasks.append(asyncio.create_task(self._fail(self.raise_in_task)))

    async def _fail(self, exc: BaseException) -> None:
        await asyncio.sleep(0.01)
        if self.taken_by is not None:
            store, holder = self.taken_by
            store.leases[LEASE] = Lease(holder, 2, store.now + TTL)
        try:
            raise exc
        except Exception as caught:
            self.decisions.append(classify(caught))

    async def stop(self, *, drain: bool) -> None:
        self.stops += 1
        self.drains.append(drain)
        if self.slow_stop is not None:
            await self.slow_stop.wait()
        self.running = False
        for task in self.tasks:
            task.cancel()


class Handler:
    """The pipeline's InboundHandler: accepts everything, counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_forward(self, peer: str, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        self.calls += 1
        return [Verdict(i.id, VerdictKind.ACCEPTED) for i in items]

    async def handle_acknowledge(self, peer: str, items: Sequence[AckItem]) -> Sequence[Verdict]:
        self.calls += 1
        raise FencedError("lease 'gw-a' is not held by 'a' with token 1")


def replica(
    store: FakeLeaseStore, work: FakeWork, holder: str = "a", handler: Handler | None = None
) -> Replica:
    return Replica(
        store,
        work,
        lease=LEASE,
        holder=holder,
        lease_seconds=TTL,
        handler=(lambda: handler) if handler is not None else None,
    )


async def test_takes_the_free_lease_fences_then_starts() -> None:
    """A free lease is taken on the first round: the store is fenced with the token before
    the work starts, the replica is active and says so."""
    store, work = FakeLeaseStore(), FakeWork()
    r = replica(store, work)
    changes: list[bool] = []
    r._on_change = (changes.append,)
    with capture_logs() as logs:
        await r.tick()
    assert r.active
    assert r.token == 1
    assert store.fences == [(LEASE, "a", 1)]
    assert (work.starts, work.stops) == (1, 0)
    assert changes == [True]
    assert [e["event"] for e in logs] == ["replica_active"]
    assert logs[0]["token"] == 1
    assert logs[0]["replica"] == "a"


async def test_a_second_replica_stays_standby_and_refuses_peer_writes() -> None:
    """While one replica holds the lease another stays standby, starts nothing, and refuses
    Forward/Acknowledge with StandbyReplica; the active one hands them to the pipeline."""
    store = FakeLeaseStore()
    handler = Handler()
    a, b = replica(store, FakeWork(), "a", handler), replica(store, FakeWork(), "b", handler)
    await a.tick()
    for _ in range(3):
        await b.tick()
        store.now += TTL / 3
        await a.tick()
    assert a.active
    assert not b.active
    assert b.work.starts == 0  # type: ignore[attr-defined]
    with pytest.raises(StandbyReplica, match="standby replica b"):
        await b.handle_forward("peer", [])
    with pytest.raises(StandbyReplica):
        await b.handle_acknowledge("peer", [])
    assert handler.calls == 0
    assert await a.handle_forward("peer", []) == []
    assert handler.calls == 1


async def test_expiry_hands_over_and_the_old_one_steps_down() -> None:
    """The active replica stops renewing (paused); after expiry the standby takes the lease
    with a higher token; the old one's next round finds it held by another and stops its
    work at once. Its fence keeps the old token, so anything it still writes is refused."""
    store = FakeLeaseStore()
    a, b = replica(store, FakeWork(), "a"), replica(store, FakeWork(), "b")
    await a.tick()
    store.now += TTL + 0.1
    await b.tick()
    assert b.active
    assert b.token == 2
    with capture_logs() as logs:
        await a.tick()
    assert not a.active
    assert a.work.stops == 1  # type: ignore[attr-defined]
    assert store.fenced_for("a") == 1
    lost = [e for e in logs if e["event"] == "lease_lost"]
    assert lost
    assert lost[0]["reason"] == "held_by_another"
    assert logs[-1]["event"] == "replica_standby"


async def test_a_failed_renewal_steps_down_then_the_lease_is_taken_again() -> None:
    """The store fails during a renewal: the work stops at once; when the store answers again
    the replica (still the holder, lease unexpired) resumes with the same token."""
    store, work = FakeLeaseStore(), FakeWork()
    r = replica(store, work)
    await r.tick()
    store.fail = StoreError("connection lost")
    with capture_logs() as logs:
        await r.tick()
    assert not r.active
    assert (work.starts, work.stops) == (1, 1)
    assert [e.get("reason") for e in logs if e["event"] == "lease_lost"] == ["renewal_failed"]
    store.fail = None
    store.now += 0.5
    await r.tick()
    assert r.active
    assert r.token == 1
    assert work.starts == 2


async def test_a_store_that_does_not_answer_in_time_is_a_failed_renewal() -> None:
    """A renewal with no answer before the lease would expire (by the replica's own clock:
    sent time of the last renewal plus lease_seconds) counts as failed."""
    store, work = FakeLeaseStore(), FakeWork()
    r = Replica(store, work, lease=LEASE, holder="a", lease_seconds=0.15)
    await r.tick()
    store.hang = asyncio.Event()
    with capture_logs() as logs:
        await r.tick()
    assert not r.active
    assert work.stops == 1
    detail = [e["detail"] for e in logs if e["event"] == "lease_lost"]
    assert detail == ["no answer in time"]


async def test_a_new_token_restarts_the_work() -> None:
    """The lease expired and this replica took it again (new token): the old work stops and
    new work starts fenced with the new token."""
    store, work = FakeLeaseStore(), FakeWork()
    r = replica(store, work)
    await r.tick()
    store.now += TTL + 1
    await r.tick()
    assert r.active
    assert r.token == 2
    assert (work.starts, work.stops) == (2, 1)
    assert store.fenced_for("a") == 2


async def test_a_fenced_write_in_the_pipeline_stops_it_at_once() -> None:
    """A FencedError that a pipeline task classifies is STOP and wakes the lease loop, which
    stops the work (reason fenced, the error's text in the log) well before the next
    renewal would have noticed."""
    store = FakeLeaseStore()
    work = FakeWork(raise_in_task=FencedError("lease 'gw-a' is not held by 'a' with token 1"))
    work.taken_by = (store, "b")
    r = Replica(store, work, lease=LEASE, holder="a", lease_seconds=30.0)
    with capture_logs() as logs:
        loop = asyncio.create_task(r.run())
        for _ in range(200):
            await asyncio.sleep(0.01)
            if work.stops:
                break
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
    assert work.decisions == [Decision.STOP]
    assert work.drains == [False]  # stopped at once, in-flight work cancelled
    assert not r.active
    lost = [e for e in logs if e["event"] == "lease_lost"]
    assert lost[0]["reason"] == "fenced"
    assert "FencedError" in lost[0]["detail"]
    assert store.fences[0] == (LEASE, "a", STANDBY_TOKEN)


async def test_fenced_outside_a_replica_is_just_stop() -> None:
    """classify without a replica's hook (a plain node, a test) is STOP and nothing else."""
    assert classify(FencedError("x")) is Decision.STOP


async def test_a_fenced_peer_write_is_answered_as_standby() -> None:
    """A peer write refused by the fence becomes StandbyReplica (the peer tries the next
    address) and makes the replica step down on its next round."""
    store, handler = FakeLeaseStore(), Handler()
    r = replica(store, FakeWork(), "a", handler)
    await r.tick()
    with pytest.raises(StandbyReplica):
        await r.handle_acknowledge("peer", [])
    store.leases[LEASE] = Lease("b", 2, store.now + TTL)  # why the write was fenced
    with capture_logs() as logs:
        await r.tick()
    assert not r.active
    assert [e["reason"] for e in logs if e["event"] == "lease_lost"] == ["fenced"]


async def test_close_stops_the_work_and_releases_the_lease() -> None:
    """Shutdown: the work stops, the lease is released, and a standby takes over at once
    (without waiting for the lease to expire)."""
    store = FakeLeaseStore()
    work = FakeWork()
    a, b = replica(store, work, "a"), replica(store, FakeWork(), "b")
    await a.tick()
    await b.tick()
    assert not b.active
    with capture_logs() as logs:
        await a.close()
    assert work.drains == [True]  # a clean shutdown lets in-flight work finish
    assert not a.active
    assert "lease_released" in [e["event"] for e in logs]
    await b.tick()
    assert b.active
    assert b.token == 2


async def test_a_standby_starts_fenced_with_no_valid_token() -> None:
    """Before it ever held the lease a replica's store refuses every write (token 0)."""
    store = FakeLeaseStore()
    store.leases[LEASE] = Lease("other", 5, 1e9)
    r = Replica(store, FakeWork(), lease=LEASE, holder="a", lease_seconds=0.3)
    loop = asyncio.create_task(r.run())
    await asyncio.sleep(0.05)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert store.fences == [(LEASE, "a", STANDBY_TOKEN)]
    assert not r.active


def test_holder_name() -> None:
    """The configured name wins; else hostname-pid on a shared store, the host on SQLite."""
    assert holder_name("gw-a-1", shared=True) == "gw-a-1"
    shared, local = holder_name(None, shared=True), holder_name(None, shared=False)
    assert shared.startswith(local + "-")
    assert shared.rsplit("-", 1)[1].isdigit()


def test_lease_seconds_must_be_positive() -> None:
    """A zero lease is a programming error (config validation keeps it positive)."""
    with pytest.raises(ValueError, match="positive"):
        Replica(FakeLeaseStore(), FakeWork(), lease=LEASE, holder="a", lease_seconds=0)


class NoVerifier:
    """The pipeline of a node without chains never verifies anything."""

    async def verify_message(self, message: Any, message_id: bytes, bundle: Any) -> Any:
        raise AssertionError("not called")

    async def verify_result(self, message: Any, message_id: bytes, result: Any, bundle: Any) -> Any:
        raise AssertionError("not called")


@dataclass
class NodeWork:
    """What relay/app.py runs while active: the node's pipeline."""

    node: GatewayNode

    async def start(self) -> None:
        await self.node.start_pipeline()

    async def stop(self, *, drain: bool) -> None:
        await self.node.stop_pipeline(drain=drain)


async def test_on_sqlite_the_same_loop_runs_a_fresh_pipeline_each_time(tmp_path: Path) -> None:
    """SqliteStore, real leases (database clock): the replica takes the lease and runs the
    node's pipeline; once another holder took the expired lease this replica's writes are
    refused and it steps down; when the lease is free again it runs a new pipeline."""
    store = SqliteStore(tmp_path)
    node = GatewayNode(store=store, adapters={}, verifier=NoVerifier(), routes=[])
    await node.start(pipeline=False)
    r = Replica(store, NodeWork(node), lease=LEASE, holder="a", lease_seconds=0.3)
    try:
        await r.tick()
        assert r.active
        first = node.pipeline
        await store.set_cursor("chain-a", "1", 1.0)  # the holder writes
        await asyncio.sleep(0.35)
        assert await store.acquire_lease(LEASE, "b", 30.0) == 2
        with pytest.raises(FencedError):
            await store.set_cursor("chain-a", "2", 2.0)
        await r.tick()
        assert not r.active
        await store.release_lease(LEASE, "b")
        await r.tick()
        assert r.active
        assert r.token == 3
        assert node.pipeline is not first
        await store.set_cursor("chain-a", "3", 3.0)
        assert await store.get_cursor("chain-a") == "3"
    finally:
        await r.close()
        await node.stop()


async def test_a_lease_expired_by_its_own_clock_is_given_up_before_renewing() -> None:
    """Resumed after a pause longer than the lease (its own clock says the lease has run
    out): the replica stops its work first (reason expired), then tries as a standby."""
    store, work = FakeLeaseStore(), FakeWork()
    now = [100.0]
    r = Replica(store, work, lease=LEASE, holder="a", lease_seconds=TTL, clock=lambda: now[0])
    await r.tick()
    now[0] += TTL + 5
    store.now += TTL + 5
    store.leases[LEASE] = Lease("b", 2, store.now + TTL)  # taken over meanwhile
    with capture_logs() as logs:
        await r.tick()
    assert not r.active
    assert work.drains == [False]
    assert [e["reason"] for e in logs if e["event"] == "lease_lost"] == ["expired"]


async def test_a_clean_stop_keeps_the_lease_while_the_work_drains() -> None:
    """SIGTERM: peers are refused at once, the work drains (slowly here) while the loop keeps
    renewing the lease, and only then is the lease released."""
    store, work = FakeLeaseStore(), FakeWork(slow_stop=asyncio.Event())
    r = Replica(store, work, lease=LEASE, holder="a", lease_seconds=0.3)
    r.start()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if r.active:
            break
    stopping = asyncio.create_task(r.stop())
    await asyncio.sleep(0.05)
    assert not r.active
    with pytest.raises(StandbyReplica):
        await r.handle_forward("peer", [])
    before = store.acquires
    await asyncio.sleep(0.35)
    assert store.acquires > before  # renewed during the drain
    assert store.leases[LEASE].expires > store.now  # still held
    assert work.slow_stop is not None
    work.slow_stop.set()
    await asyncio.wait_for(stopping, 5)
    assert work.drains == [True]
    assert store.leases[LEASE].expires == store.now  # released
