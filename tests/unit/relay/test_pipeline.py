"""The pipeline with fake chains and a fake verifier: flow, batching, backpressure, rejections,
retries and stuck visibility. The store is the real SQLite store on files under ``tmp_path``.

Waiting uses :func:`eventually` (a condition polled until a generous limit): nothing asserts on
how long a step took.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters.base import (
    ChainStatus,
    ChainUnavailable,
    Evidence,
    Fact,
    FactKind,
    FactPage,
    RejectedByChain,
    Submission,
)
from relay.config import RelaySettings
from relay.crash import ENV, EXIT_CODE, check_environment, crash_point
from relay.links import AckItem, ForwardItem, VerdictKind
from relay.node import GatewayNode, InvalidRequest
from relay.pipeline import PipelineSettings
from relay.sqlite_store import SqliteStore
from relay.store import NEVER, MessageFilter, Role, State
from relay.trust import EvidenceRejected, NotYetTrusted
from verifier.messages import DeliveryResult, DeliveryStatus, Message

A, B = "chain-a", "chain-b"
GATEWAY = b"\x0a" * 20


class FakeChain:
    """A chain in memory: every fact is final at once, one fact per "block"."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.log: list[Fact] = []
        self.nonce = 0
        self.delivered: dict[bytes, DeliveryStatus] = {}
        self.acked: dict[bytes, DeliveryStatus] = {}
        self.deliver_calls: list[list[bytes]] = []
        self.ack_calls: list[list[bytes]] = []
        self.down = False
        self.refuse: set[bytes] = set()
        """Ids whose presence makes deliverMessages revert (a poisoned batch)."""
        self.peers: dict[str, FakeChain] = {}
        self.time = 1_000
        self.honest_elsewhere = False
        self.genuine_bodies: dict[bytes, Message] = {}
        """Bodies another endpoint serves for ids whose first endpoint altered them."""
        self.requeued: list[int] = []
        self.anchors: list[tuple[bytes, int, bytes, bytes]] = []
        self.invented: set[bytes] = set()
        """Ids of MessageSent facts an endpoint made up: the chain's state says 0 (never sent)."""

    def initial_cursor(self, height: int = 0) -> str:
        return str(height)

    async def facts(self, cursor: str, *, max_blocks: int = 1000) -> FactPage:
        if self.down:
            raise ChainUnavailable("down", chain=self.chain)
        start = int(cursor)
        facts = tuple(self.log[start : start + max_blocks])
        return FactPage(facts, str(start + len(facts)), len(self.log))

    async def refetch(self, fact: Fact, *, avoid: frozenset[str]) -> Fact:
        """With ``honest_elsewhere``, another endpoint serves the fact's genuine evidence;
        otherwise no other endpoint has it."""
        if not self.honest_elsewhere or fact.evidence is None:
            raise ChainUnavailable("no other endpoint", chain=self.chain)
        bundle = {**fact.evidence.bundle, "bad": False}
        return replace(
            fact,
            message=self.genuine_bodies.get(fact.id, fact.message),
            evidence=Evidence(bundle, "fake://other"),
            endpoint="fake://other",
        )

    async def status(self) -> ChainStatus:
        return ChainStatus(self.chain, len(self.log), len(self.log), self.time)

    def _fact(self, kind: FactKind, id: bytes, **kw: Any) -> Fact:
        bundle = {"id": id.hex(), "kind": str(kind), "chain": self.chain, **kw.pop("extra", {})}
        return Fact(
            kind=kind,
            chain=self.chain,
            height=len(self.log) + 1,
            block_hash="0x" + "00" * 32,
            tx_hash=f"0x{len(self.log):064x}",
            log_index=0,
            id=id,
            endpoint="fake://" + self.chain,
            evidence=Evidence(bundle, "fake://" + self.chain),
            **kw,
        )

    async def send_message(
        self,
        dst_chain: str,
        receiver: bytes,
        payload: bytes,
        timeout: int,
        *,
        bad: bool = False,
        invented: bool = False,
    ) -> tuple[bytes, Submission]:
        self.nonce += 1
        m = Message(
            self.chain, GATEWAY, dst_chain, self.nonce, b"\x01" * 20, receiver, payload, timeout
        )
        mid = hashlib.sha256(repr(m).encode()).digest()
        if invented:
            self.invented.add(mid)
        fact = self._fact(FactKind.MESSAGE_SENT, mid, message=m, extra={"bad": bad})
        self.log.append(fact)
        return mid, Submission(fact.tx_hash, fact.height, "fake")

    async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
        if self.down:
            raise ChainUnavailable("down", chain=self.chain)
        ids = [i for i, _ in deliveries]
        if self.refuse & set(ids):
            raise RejectedByChain("execution reverted", chain=self.chain)
        self.deliver_calls.append(ids)
        for mid, m in deliveries:
            if mid in self.delivered or m.dst_chain != self.chain:
                continue
            status = DeliveryStatus.EXPIRED if m.timeout <= self.time else DeliveryStatus.SUCCESS
            if m.payload == b"revert":
                status = DeliveryStatus.FAILED
            self.delivered[mid] = status
            result = DeliveryResult(mid, self.chain, GATEWAY, status, b"")
            self.log.append(
                self._fact(FactKind.DELIVERY_RESULT, mid, result=result, src_chain=m.src_chain)
            )
        return Submission("0xdeliver", len(self.log), "fake")

    async def acknowledge(self, results: Sequence[DeliveryResult]) -> Submission:
        if self.down:
            raise ChainUnavailable("down", chain=self.chain)
        self.ack_calls.append([r.id for r in results])
        for r in results:
            if r.id not in self.acked:
                self.acked[r.id] = r.status
                fact = self._fact(FactKind.ACKNOWLEDGED, r.id, ack_status=r.status)
                self.log.append(fact)
        return Submission("0xack", len(self.log), "fake")

    async def seal(self, *, force: bool = False) -> Submission | None:
        return None

    async def requeue(self, seal_number: int) -> Submission:
        self.requeued.append(seal_number)
        return Submission("0xrequeue", len(self.log), "fake")

    async def anchor(
        self, contract: bytes, seq: int, head_hash: bytes, checkpoint_digest: bytes
    ) -> Submission:
        self.anchors.append((contract, seq, head_hash, checkpoint_digest))
        return Submission(f"0xanchor{seq}", len(self.log), "fake")

    async def delivery_status(
        self, message_id: bytes, *, final: bool = False
    ) -> DeliveryStatus | None:
        return self.delivered.get(message_id)

    async def sent_state(self, message_id: bytes, *, final: bool = False) -> int:
        if message_id in self.acked:
            return 2
        if message_id in self.invented:
            return 0
        return 1 if any(f.id == message_id for f in self.log) else 0

    async def close(self) -> None:
        return None


class FakeVerifier:
    """Rejects bundles marked bad; answers "not yet trusted" ``not_yet`` times first."""

    def __init__(self) -> None:
        self.not_yet = 0
        self.calls = 0

    async def verify_message(
        self, message: Message, message_id: bytes, bundle: Mapping[str, Any]
    ) -> None:
        self.calls += 1
        if bundle.get("id") != message_id.hex() or bundle.get("bad"):
            raise EvidenceRejected("the proof does not hold", check="receipt_proof")
        if self.not_yet > 0:
            self.not_yet -= 1
            raise NotYetTrusted("height not final", chain=message.src_chain)

    async def verify_result(
        self,
        message: Message,
        message_id: bytes,
        result: DeliveryResult,
        bundle: Mapping[str, Any],
    ) -> None:
        if bundle.get("id") != message_id.hex() or result.dst_chain != message.dst_chain:
            raise EvidenceRejected("not this message's result", check="result")


FAST = PipelineSettings(
    batch_size=10,
    batch_wait=0.05,
    queue_bound=100,
    retry_initial=0.01,
    retry_max=0.05,
    stuck_after=60,
    max_blocks=50,
    poll_interval=0.02,
    recheck_after=0.5,
)

Env = tuple[GatewayNode, FakeChain, FakeChain, FakeVerifier]
MakeEnv = Callable[..., Awaitable[Env]]


@pytest.fixture(name="make_env")
async def _make_env(tmp_path: Path) -> AsyncIterator[MakeEnv]:
    """Builds a node serving chain-a and chain-b (routes both ways) with the given settings;
    stops it at the end."""
    nodes: list[GatewayNode] = []

    async def make(
        settings: PipelineSettings = FAST,
        *,
        chain_factory: Callable[[str], FakeChain] = FakeChain,
        verifier_factory: Callable[[], FakeVerifier] = FakeVerifier,
        **kw: Any,
    ) -> Env:
        a, b = chain_factory(A), chain_factory(B)
        verifier = verifier_factory()
        node = GatewayNode(
            store=SqliteStore(tmp_path / f"n{len(nodes)}"),
            adapters={A: a, B: b},
            verifier=verifier,
            routes=[(A, B), (B, A)],
            settings=settings,
            start_heights={A: 0, B: 0},
            **kw,
        )
        nodes.append(node)
        return node, a, b, verifier

    yield make
    for node in nodes:
        await node.stop()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = 20) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


async def states(node: GatewayNode, role: Role) -> dict[bytes, State]:
    page = await node.store.list_messages(MessageFilter(role=role), limit=1000)
    return {r.id: r.state for r in page.items}


async def all_in(node: GatewayNode, ids: list[bytes], role: Role, state: State) -> bool:
    got = await states(node, role)
    return all(got.get(i) is state for i in ids)


async def test_messages_both_ways_are_delivered_and_acknowledged_once_in_batches(
    make_env: MakeEnv,
) -> None:
    """Sent before start, 7 messages a->b and 3 b->a go through in batches, exactly once."""
    node, a, b, _ = await make_env()
    ab = [(await a.send_message(B, b"\x02" * 20, b"m%d" % i, 5000))[0] for i in range(7)]
    ba = [(await b.send_message(A, b"\x02" * 20, b"n%d" % i, 5000))[0] for i in range(3)]
    await node.start()
    await eventually(lambda: all_in(node, ab + ba, Role.SOURCE, State.ACKNOWLEDGED), "acked")
    await eventually(
        lambda: all_in(node, ab + ba, Role.DESTINATION, State.RESULT_FORWARDED), "closed"
    )
    assert sorted(b.delivered) == sorted(ab)
    assert sorted(a.delivered) == sorted(ba)
    assert sorted(a.acked) == sorted(ab)
    assert sum(len(c) for c in b.deliver_calls) == 7, "each message submitted once"
    assert len(b.deliver_calls) < 7, "deliveries went out in batches"
    assert sum(len(c) for c in a.ack_calls) == 7
    rec = await node.store.get(ab[0], Role.SOURCE)
    assert rec is not None
    assert rec.ack_status is DeliveryStatus.SUCCESS
    hist = [h.state for h in await node.store.history(ab[0])]
    assert State.OBSERVED in hist
    assert State.FORWARDED in hist
    assert hist[-1] in {State.ACKNOWLEDGED, State.RESULT_FORWARDED}


async def test_failed_and_expired_results_close_with_their_status(make_env: MakeEnv) -> None:
    """A reverting receiver closes as FAILED; a message past its timeout as EXPIRED, from the
    destination's proven result (the source never decides expiry by its own clock)."""
    node, a, b, _ = await make_env()
    failed, _ = await a.send_message(B, b"\x02" * 20, b"revert", 5000)
    expired, _ = await a.send_message(B, b"\x02" * 20, b"late", b.time)
    await node.start()
    ids = [failed, expired]
    await eventually(lambda: all_in(node, ids, Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert a.acked == {failed: DeliveryStatus.FAILED, expired: DeliveryStatus.EXPIRED}
    dst = await states(node, Role.DESTINATION)
    assert State.EXPIRED in [h.state for h in await node.store.history(expired)]
    assert dst[expired] is State.RESULT_FORWARDED


async def test_a_destination_that_is_down_stops_queues_and_cursor_and_drops_nothing(
    make_env: MakeEnv,
) -> None:
    """With chain-b down every stage fills to its bound, the observer of chain-a stops and its
    cursor stops advancing; when b returns, every message is delivered once."""
    settings = PipelineSettings(
        batch_size=2,
        batch_wait=0.01,
        queue_bound=2,
        retry_initial=0.01,
        retry_max=0.03,
        stuck_after=60,
        max_blocks=1,
        poll_interval=0.02,
        recheck_after=0.5,
    )
    node, a, b, _ = await make_env(settings)
    b.down = True
    ids = [(await a.send_message(B, b"\x02" * 20, b"q%d" % i, 5000))[0] for i in range(30)]
    await node.start()
    p = node.pipeline

    async def saturated() -> bool:
        # Full, and the rows ahead have failed at least once: nothing is in flight any more
        # that could still free a slot (a forward accepted just before the stage filled).
        retrying = [*p.deliver_stages[B].pending.values(), *p.forward_stage.pending.values()]
        return (
            p.deliver_stages[B].full()
            and p.forward_stage.full()
            and p.verify_stage.full()
            and all(r.attempts > 0 for r in retrying)
        )

    await eventually(saturated, "every stage at its bound")
    cursor = await node.store.get_cursor(A)
    await asyncio.sleep(0.3)  # let retries spin: the cursor must not move meanwhile
    assert await node.store.get_cursor(A) == cursor
    assert cursor is not None
    assert int(cursor) < 30, "the observer stopped before reading everything"
    for st in p.stages:
        assert len(st.pending) <= st.bound
    seen = await states(node, Role.SOURCE)
    assert len(seen) <= int(cursor) + 1
    b.down = False
    await eventually(lambda: all_in(node, ids, Role.SOURCE, State.ACKNOWLEDGED), "all acked")
    assert sorted(b.delivered) == sorted(ids)
    assert sum(len(c) for c in b.deliver_calls) == 30


async def test_a_bad_forward_does_not_poison_the_good_one(make_env: MakeEnv) -> None:
    """Requirement 13: a peer's forged Forward is rejected and not persisted; the genuine one
    for the same id is accepted afterwards. A peer cannot forward for a chain it does not serve
    (requirement 2)."""
    node, a, _, verifier = await make_env(peer_chains={"peer-a": [A], "peer-c": ["chain-c"]})
    await node.store.open()
    mid, _ = await a.send_message(B, b"\x02" * 20, b"x", 5000)
    fact = a.log[-1]
    assert fact.message is not None
    assert fact.evidence is not None
    good = ForwardItem(mid, fact.message, fact.evidence.bundle)
    forged = ForwardItem(mid, fact.message, {**fact.evidence.bundle, "bad": True})
    [v] = await node.handler.handle_forward("peer-c", [good])
    assert (v.kind, v.check) == (VerdictKind.REJECTED, "peer_chain")
    assert verifier.calls == 0, "refused before any verification"
    [v] = await node.handler.handle_forward("peer-a", [forged])
    assert (v.kind, v.check) == (VerdictKind.REJECTED, "receipt_proof")
    assert await node.store.get(mid, Role.DESTINATION) is None
    [rej] = await node.store.rejected(mid)
    assert (rej.peer, rej.check) == ("peer-a", "receipt_proof")
    [v] = await node.handler.handle_forward("peer-a", [good])
    assert v.kind is VerdictKind.ACCEPTED
    rec = await node.store.get(mid, Role.DESTINATION)
    assert rec is not None
    assert rec.state is State.VERIFIED
    calls = verifier.calls
    [v] = await node.handler.handle_forward("peer-a", [good])
    assert v.kind is VerdictKind.ACCEPTED
    assert verifier.calls == calls, "a duplicate is answered from the store"


async def test_own_chain_evidence_that_fails_is_retried_as_stuck_and_never_forwarded(
    make_env: MakeEnv,
) -> None:
    """A sent fact whose evidence fails locally, with no other endpoint to ask, is never
    forwarded and never rejected for good (requirement 13: an endpoint of our own chain may
    lie): it stays observed, retried with the verifier's reason, visible as stuck."""
    node, a, b, _ = await make_env()
    bad, _ = await a.send_message(B, b"\x02" * 20, b"x", 5000, bad=True)
    good, _ = await a.send_message(B, b"\x02" * 20, b"y", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [good], Role.SOURCE, State.ACKNOWLEDGED), "good")

    async def retried() -> bool:
        rec = await node.store.get(bad, Role.SOURCE)
        return rec is not None and rec.attempts >= 2

    await eventually(retried, "retried")
    rec = await node.store.get(bad, Role.SOURCE)
    assert rec is not None
    assert rec.state is State.OBSERVED
    assert rec.next_try_at != NEVER
    assert rec.last_error is not None
    assert "receipt_proof" in rec.last_error
    assert bad not in b.delivered
    assert await node.store.get(bad, Role.DESTINATION) is None


async def test_a_bad_proof_from_one_endpoint_is_refetched_from_another(
    make_env: MakeEnv,
) -> None:
    """Requirement 13 on the source: a sent fact whose evidence fails is asked again from the
    other endpoints; the genuine evidence verifies, replaces the bad copy, and the message is
    delivered. The failed bundle stays as a (bounded) rejected attempt."""
    node, a, b, _ = await make_env()
    a.honest_elsewhere = True
    mid, _ = await a.send_message(B, b"\x02" * 20, b"x", 5000, bad=True)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert mid in b.delivered
    [sent] = [e for e in await node.store.evidence(mid) if e.hop == "message_sent"]
    assert (sent.endpoint, sent.bundle.get("bad")) == ("fake://other", False)
    [rejected] = await node.store.rejected(mid)
    assert rejected.check == "receipt_proof"


async def test_not_yet_trusted_retries_with_backoff_and_records_attempts(
    make_env: MakeEnv,
) -> None:
    """A retryable verdict adds attempts with their error and does not change the state."""
    node, a, _, verifier = await make_env()
    verifier.not_yet = 3
    mid, _ = await a.send_message(B, b"\x02" * 20, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    hist = await node.store.history(mid)
    attempts = [h for h in hist if h.kind == "attempt"]
    assert len(attempts) >= 3
    assert all("not yet trusted" in (h.error or "") for h in attempts[:3])


async def test_a_refused_batch_is_bisected_and_the_refused_message_shows_as_stuck(
    make_env: MakeEnv,
) -> None:
    """The chain refuses any batch holding one message: the others are delivered, and that one
    is stuck (stage, attempts, last error) in the store and in a warning log, never silent."""
    settings = PipelineSettings(
        batch_size=8,
        batch_wait=0.2,
        queue_bound=100,
        retry_initial=0.01,
        retry_max=0.05,
        stuck_after=0.3,
        max_blocks=50,
        poll_interval=0.02,
        recheck_after=0.5,
    )
    node, a, b, _ = await make_env(settings)
    ids = [(await a.send_message(B, b"\x02" * 20, b"b%d" % i, 5000))[0] for i in range(6)]
    b.refuse = {ids[3]}
    with capture_logs() as logs:
        await node.start()
        others = ids[:3] + ids[4:]
        await eventually(lambda: all_in(node, others, Role.SOURCE, State.ACKNOWLEDGED), "others")

        async def reported() -> bool:
            return any(e["event"] == "message_stuck" for e in logs)

        await eventually(reported, "the stuck message logged")
    stuck = {(s.id, s.role): s for s in await node.store.stuck(node.pipeline.clock(), 0.3)}
    assert (ids[3], Role.DESTINATION) in stuck
    s = stuck[ids[3], Role.DESTINATION]
    assert s.state is State.VERIFIED
    assert stuck[ids[3], Role.SOURCE].state is State.FORWARDED, "the source shows it waiting"
    assert s.attempts >= 1
    assert s.last_error is not None
    assert "RejectedByChain" in s.last_error
    assert ids[3] not in b.delivered
    [event] = [e for e in logs if e["event"] == "message_stuck" and e["role"] == "destination"]
    assert event["message_id"] == "0x" + ids[3].hex()


async def test_send_message_converts_the_relative_timeout_and_refuses_zero(
    make_env: MakeEnv,
) -> None:
    """Requirement 18: the timeout is the destination chain's time plus the relative one."""
    node, a, b, _ = await make_env()
    b.time = 777
    with pytest.raises(InvalidRequest):
        await node.send_message(A, B, b"\x02" * 20, b"x", 0)
    with pytest.raises(InvalidRequest):
        await node.send_message(A, "chain-z", b"\x02" * 20, b"x", 10)
    sent = await node.send_message(A, B, b"\x02" * 20, b"x", 60)
    assert sent.timeout == 837
    fact = a.log[-1]
    assert fact.message is not None
    assert fact.message.timeout == 837


def test_settings_come_from_the_relay_section() -> None:
    """PipelineSettings takes every [relay] tuning key from relay.config.RelaySettings."""
    relay = RelaySettings(
        batch_size=7,
        batch_wait=0.3,
        queue_bound=9,
        retry_initial=0.1,
        retry_max=4.0,
        stuck_after=50.0,
        max_blocks=10,
        poll_interval=0.2,
    )
    s = PipelineSettings.from_relay(relay, drain_timeout=5.0)
    assert (s.batch_size, s.batch_wait, s.queue_bound, s.retry_initial, s.retry_max) == (
        7,
        0.3,
        9,
        0.1,
        4.0,
    )
    assert (s.stuck_after, s.max_blocks, s.poll_interval, s.drain_timeout) == (50.0, 10, 0.2, 5.0)


async def test_send_message_to_a_remote_chain_uses_its_read_time(tmp_path: Path) -> None:
    """A destination served by a peer: the timeout is based on that chain's own latest time."""
    a = FakeChain(A)

    async def remote_time() -> int:
        return 5_000

    node = GatewayNode(
        store=SqliteStore(tmp_path),
        adapters={A: a},
        verifier=FakeVerifier(),
        routes=[(A, "chain-r")],
        chain_time={"chain-r": remote_time},
    )
    sent = await node.send_message(A, "chain-r", b"\x02" * 20, b"x", 30)
    assert sent.timeout == 5_030


async def test_an_unusable_seal_is_requeued(make_env: MakeEnv) -> None:
    """FISCO: a seal whose transaction cannot serve as evidence is requeued (once per fact)."""
    node, a, _, _ = await make_env()
    a.log.append(
        Fact(
            FactKind.UNUSABLE_SEAL,
            A,
            1,
            "0x" + "00" * 32,
            "0x" + "11" * 32,
            0,
            b"",
            "fake://a",
            seal_number=7,
            reason="not exactly seal()",
        )
    )
    await node.start()

    async def requeued() -> bool:
        return a.requeued == [7]

    await eventually(requeued, "seal 7 requeued")


async def test_acknowledgements_are_checked_like_forwards(make_env: MakeEnv) -> None:
    """handle_acknowledge: only a peer serving the message's destination, only for a known
    message, a forged result is rejected and not persisted, the genuine one is accepted."""
    node, a, b, _ = await make_env(peer_chains={"peer-b": [B], "peer-a": [A]})
    b.down = True  # the result comes from the "peer" below, not from this node's chain-b
    mid, _ = await a.send_message(B, b"\x02" * 20, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.VERIFIED), "verified")
    result = DeliveryResult(mid, B, GATEWAY, DeliveryStatus.SUCCESS, b"")
    good = AckItem(mid, result, {"id": mid.hex()})
    forged = AckItem(mid, result, {"id": "00"})
    [v] = await node.handler.handle_acknowledge("peer-a", [good])
    assert (v.kind, v.check) == (VerdictKind.REJECTED, "peer_chain")
    [v] = await node.handler.handle_acknowledge("peer-b", [AckItem(b"\x05" * 32, result, {})])
    assert (v.kind, v.check) == (VerdictKind.REJECTED, "unknown_message")
    [v] = await node.handler.handle_acknowledge("peer-b", [forged])
    assert (v.kind, v.check) == (VerdictKind.REJECTED, "result")
    rec = await node.store.get(mid, Role.SOURCE)
    assert rec is not None
    assert rec.result is None
    [v] = await node.handler.handle_acknowledge("peer-b", [good])
    assert v.kind is VerdictKind.ACCEPTED
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert a.acked == {mid: DeliveryStatus.SUCCESS}


@pytest.mark.parametrize(
    ("spec", "survives"),
    [("before_submit:2", False), ("before_submit:3", True), ("after_verify", True), ("", True)],
)
def test_a_crash_point_exits_hard_on_its_nth_pass(spec: str, survives: bool) -> None:
    """GATEWAY_CRASH_AT=name[:N] ends the process with os._exit at the N-th pass there."""
    code = (
        "from relay.crash import crash_point\n"
        "crash_point('before_submit'); crash_point('before_submit'); print('survived')"
    )
    env = {**os.environ, ENV: spec}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    if survives:
        assert (done.returncode, done.stdout.strip()) == (0, "survived")
    else:
        assert (done.returncode, done.stdout) == (EXIT_CODE, "")
        assert "crash point before_submit reached" in done.stderr


def test_a_misspelt_crash_point_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown name fails at start-up instead of silently never crashing."""
    monkeypatch.setenv(ENV, "befor_submit")
    with pytest.raises(ValueError, match="unknown crash point"):
        check_environment()
    with pytest.raises(ValueError, match="unknown crash point"):
        crash_point("not_a_point")


async def test_a_call_cancelled_under_a_stage_does_not_end_its_worker(make_env: MakeEnv) -> None:
    """A library call that raises CancelledError (a gRPC call cancelled by another task) inside
    a delivery batch: the batch is retried and the stage's worker goes on; before, the worker
    task ended silently and the route stalled."""

    class CancelsOnce(FakeChain):
        cancelled = 0

        async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
            if self.cancelled == 0:
                self.cancelled += 1
                raise asyncio.CancelledError("cancelled by another task")
            return await super().deliver(deliveries)

    node, a, b, _ = await make_env(chain_factory=CancelsOnce)
    ids = [(await a.send_message(B, b"\x02" * 20, b"m%d" % i, 5000))[0] for i in range(3)]
    await node.start()
    await eventually(lambda: all_in(node, ids, Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert isinstance(b, CancelsOnce)
    assert b.cancelled == 1
    assert sorted(b.delivered) == sorted(ids)
