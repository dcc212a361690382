"""Attacks from the pipeline's review (issue 8), each performed against the real pipeline and
SQLite store with the fake chains and verifier of ``test_pipeline.py``: lying endpoints of a
served chain (acknowledgements, results, bodies, lagging heights), a peer's duplicate and
garbage Forwards, lost commits, and a chain's false "already done".
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from adapters.base import (
    ChainUnavailable,
    Evidence,
    Fact,
    FactKind,
    Submission,
    UnexpectedResponse,
)
from relay.links import ForwardItem, Verdict, VerdictKind
from relay.node import GatewayNode
from relay.pipeline import REJECTED_WRITES_PER_PEER
from relay.sqlite_store import SqliteStore
from relay.store import NEVER, Hop, Role, State
from relay.trust import EvidenceRejected
from tests.unit.relay.test_pipeline import (
    FAST,
    GATEWAY,
    A,
    B,
    FakeChain,
    FakeVerifier,
    MakeEnv,
    _make_env,
    all_in,
    eventually,
)
from verifier.messages import DeliveryResult, DeliveryStatus, Message

__all__ = ["_make_env"]  # the fixture, used by name

RECEIVER = b"\x02" * 20


class StrictVerifier(FakeVerifier):
    """The fake verifier plus the real one's binding of the id to the body, a result bundle
    marked bad, and a "height" verdict for a lagging endpoint ``lagging`` times."""

    def __init__(self) -> None:
        super().__init__()
        self.lagging = 0
        self.result_calls = 0

    async def verify_message(
        self, message: Message, message_id: bytes, bundle: Mapping[str, Any]
    ) -> None:
        if hashlib.sha256(repr(message).encode()).digest() != message_id:
            self.calls += 1
            raise EvidenceRejected("the body does not hash to the id", check="message_id")
        if self.lagging > 0:
            self.lagging -= 1
            self.calls += 1
            raise EvidenceRejected("height beyond the final head", check="height")
        await super().verify_message(message, message_id, bundle)

    async def verify_result(
        self,
        message: Message,
        message_id: bytes,
        result: DeliveryResult,
        bundle: Mapping[str, Any],
    ) -> None:
        self.result_calls += 1
        if bundle.get("bad"):
            raise EvidenceRejected("the result's proof does not hold", check="receipt_proof")
        await super().verify_result(message, message_id, result, bundle)


class LyingChain(FakeChain):
    """A chain whose first endpoint lies about results (status EXPIRED, a bundle that does
    not verify) and can claim ids delivered or acknowledged that are not. With
    ``honest_elsewhere`` another endpoint serves the genuine fact."""

    def __init__(self, chain: str) -> None:
        super().__init__(chain)
        self.lie_results = False
        self.genuine: dict[tuple[str, bytes], Fact] = {}
        self.claim_delivered: set[bytes] = set()
        self.fail_deliveries = 0
        self.drop_deliveries = 0
        """deliverMessages transactions that are never mined (the call still returns)."""
        self.ack_lie: DeliveryStatus | None = None
        self.claim_acked: set[bytes] = set()
        self.fail_acks = 0

    async def acknowledge(self, results: Sequence[DeliveryResult]) -> Submission:
        if self.fail_acks > 0:
            self.fail_acks -= 1
            raise ChainUnavailable("timeout", chain=self.chain)
        start = len(self.log)
        sub = await super().acknowledge(results)
        if self.ack_lie is not None:
            for i in range(start, len(self.log)):
                self.log[i] = replace(self.log[i], ack_status=self.ack_lie)
        return sub

    async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
        if self.fail_deliveries > 0:
            self.fail_deliveries -= 1
            raise ChainUnavailable("timeout", chain=self.chain)
        if self.drop_deliveries > 0:
            self.drop_deliveries -= 1
            return Submission("0xdropped", len(self.log), "fake")
        start = len(self.log)
        sub = await super().deliver(deliveries)
        if self.lie_results:
            for i in range(start, len(self.log)):
                fact = self.log[i]
                assert fact.result is not None
                assert fact.evidence is not None
                self.genuine[fact.tx_hash, fact.id] = fact
                lie = replace(fact.result, status=DeliveryStatus.EXPIRED)
                bad = Evidence({**fact.evidence.bundle, "bad": True}, fact.evidence.endpoint)
                self.log[i] = replace(fact, result=lie, evidence=bad)
        return sub

    async def refetch(self, fact: Fact, *, avoid: frozenset[str]) -> Fact:
        genuine = self.genuine.get((fact.tx_hash, fact.id))
        if genuine is None:
            return await super().refetch(fact, avoid=avoid)
        if not self.honest_elsewhere:
            raise ChainUnavailable("no other endpoint", chain=self.chain)
        assert genuine.evidence is not None
        return replace(genuine, evidence=Evidence(genuine.evidence.bundle, "fake://other"))

    async def sent_state(self, message_id: bytes, *, final: bool = False) -> int:
        honest = await super().sent_state(message_id, final=final)
        if message_id in self.claim_acked and honest != 2:
            if final:  # every endpoint is asked: the honest ones contradict the liar
                raise UnexpectedResponse("sentState: endpoints disagree", chain=self.chain)
            return 2
        return honest

    async def delivery_status(
        self, message_id: bytes, *, final: bool = False
    ) -> DeliveryStatus | None:
        honest = await super().delivery_status(message_id, final=final)
        if message_id in self.claim_delivered and honest is None:
            if final:
                raise UnexpectedResponse("deliveryStatus: endpoints disagree", chain=self.chain)
            return DeliveryStatus.SUCCESS
        return honest


def ack_fact(chain: FakeChain, id: bytes, status: DeliveryStatus) -> Fact:
    """An ``acknowledged`` fact as an endpoint reports it (no evidence: read from the chain)."""
    fact = chain._fact(FactKind.ACKNOWLEDGED, id, ack_status=status)
    return replace(fact, evidence=None)


def node_on(path: Path, a: FakeChain, b: FakeChain, verifier: FakeVerifier) -> GatewayNode:
    return GatewayNode(
        store=SqliteStore(path),
        adapters={A: a, B: b},
        verifier=verifier,
        routes=[(A, B), (B, A)],
        settings=FAST,
        start_heights={A: 0, B: 0},
    )


async def caught_up(node: GatewayNode, *chains: FakeChain) -> bool:
    for c in chains:
        if await node.store.get_cursor(c.chain) != str(len(c.log)):
            return False
    return True


async def test_a_lying_acknowledged_fact_does_not_close_a_forwarded_message(
    make_env: MakeEnv,
) -> None:
    """H1: "acknowledged, EXPIRED" facts for a message in flight, one on the message's own chain
    (which has not acknowledged it) and one on the other chain, leave the row open; the real
    SUCCESS result is then acknowledged on the source chain and the row closes with it."""
    node, a, b, _ = await make_env()
    b.down = True
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.FORWARDED), "forwarded")
    a.log.append(ack_fact(a, mid, DeliveryStatus.EXPIRED))
    b.log.append(ack_fact(b, mid, DeliveryStatus.EXPIRED))
    await eventually(lambda: caught_up(node, a), "the lie on chain-a observed")
    rec = await node.store.get(mid, Role.SOURCE)
    assert rec is not None
    assert rec.state is State.FORWARDED, "an unconfirmed acknowledged fact closed the row"
    b.down = False
    await eventually(lambda: caught_up(node, b), "the lie on chain-b observed")
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert a.acked == {mid: DeliveryStatus.SUCCESS}, "acknowledgeResults sent on chain-a"
    rec = await node.store.get(mid, Role.SOURCE)
    assert rec is not None
    assert rec.ack_status is DeliveryStatus.SUCCESS


async def test_an_acknowledged_fact_with_another_status_than_the_verified_result_is_refused(
    make_env: MakeEnv,
) -> None:
    """H1: with a verified result on the row, an acknowledged fact must carry its status; an
    endpoint reporting EXPIRED for a SUCCESS result raises an alarm and the row stays open."""
    node, a, _, _ = await make_env(chain_factory=LyingChain)
    assert isinstance(a, LyingChain)
    a.ack_lie = DeliveryStatus.EXPIRED
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    with capture_logs() as logs:
        await node.start()
        await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACK_SUBMITTED), "sent")
        await eventually(lambda: observed(node, a, FactKind.ACKNOWLEDGED), "lie")

        async def alarmed() -> bool:
            return any(e["event"] == "ack_status_mismatch" for e in logs)

        await eventually(alarmed, "the mismatch logged as an error")
    rec = await node.store.get(mid, Role.SOURCE)
    assert rec is not None
    assert rec.state is State.ACK_SUBMITTED
    assert rec.ack_status is None
    [event] = [e for e in logs if e["event"] == "ack_status_mismatch"][:1]
    assert event["log_level"] == "error"


async def test_acknowledged_by_another_relayer_closes_with_the_status_unknown(
    make_env: MakeEnv,
) -> None:
    """H1: without a verified result, an acknowledged fact that the chain's state confirms
    closes the row as acknowledged with no status (never the fact's word, never EXPIRED)."""
    node, a, b, _ = await make_env()
    b.down = True
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    a.acked[mid] = DeliveryStatus.EXPIRED  # another relayer's acknowledgeResults
    a.log.append(ack_fact(a, mid, DeliveryStatus.EXPIRED))
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "closed")
    rec = await node.store.get(mid, Role.SOURCE)
    assert rec is not None
    assert rec.ack_status is None
    assert rec.last_error is not None
    assert "status not proven" in rec.last_error


async def test_a_lying_result_fact_never_ends_delivery_and_the_genuine_one_replaces_it(
    tmp_path: Path,
) -> None:
    """H2: a result fact from chain-b whose evidence fails (and which claims EXPIRED) does not
    move the destination row; with one endpoint it shows as stuck with its reason (retried,
    never next_try_at = inf); a result for chain-b's message read from chain-a is ignored;
    once another endpoint serves the genuine fact, SUCCESS is delivered and acknowledged."""
    a, b, verifier = FakeChain(A), LyingChain(B), StrictVerifier()
    b.lie_results = True
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    node = node_on(tmp_path, a, b, verifier)
    await node.start()
    try:
        await eventually(lambda: observed(node, b, FactKind.DELIVERY_RESULT), "fact")

        async def tried() -> bool:
            rec = await node.store.get(mid, Role.DESTINATION)
            return rec is not None and rec.attempts >= 2

        await eventually(tried, "the bad result retried")
        result = DeliveryResult(mid, B, GATEWAY, DeliveryStatus.EXPIRED, b"")
        wrong = replace(a._fact(FactKind.DELIVERY_RESULT, mid, result=result, src_chain=A))
        a.log.append(wrong)
        await eventually(lambda: caught_up(node, a), "the wrong-chain result observed")
        rec = await node.store.get(mid, Role.DESTINATION)
        assert rec is not None
        assert rec.state is State.DELIVERY_SUBMITTED
        assert rec.result is None
        assert rec.next_try_at != NEVER
        assert rec.last_error is not None
        assert "receipt_proof" in rec.last_error
        assert not [e for e in await node.store.evidence(mid) if e.hop is Hop.DELIVERY_RESULT]
        b.honest_elsewhere = True
        await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
        assert a.acked == {mid: DeliveryStatus.SUCCESS}
        [ev] = [e for e in await node.store.evidence(mid) if e.hop is Hop.DELIVERY_RESULT]
        assert (ev.endpoint, ev.bundle.get("bad")) == ("fake://other", None)
    finally:
        await node.stop()


async def observed(node: GatewayNode, chain: FakeChain, kind: FactKind) -> bool:
    """A fact of ``kind`` is on ``chain`` and the node's observer has read past it."""
    return any(f.kind is kind for f in chain.log) and await caught_up(node, chain)


async def test_an_invented_result_does_not_stop_a_delivery_that_never_happened(
    make_env: MakeEnv,
) -> None:
    """H2: the delivery transaction was never mined and an endpoint invents a result for it
    (EXPIRED, evidence that fails, no other endpoint has it): the chain does not know the id,
    so the delivery is submitted again and the genuine SUCCESS is acknowledged."""
    node, a, b, _ = await make_env(
        replace(FAST, recheck_after=0.1),
        chain_factory=LyingChain,
        verifier_factory=StrictVerifier,
    )
    assert isinstance(b, LyingChain)
    b.drop_deliveries = 1
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.DESTINATION, State.DELIVERY_SUBMITTED), "s")
    result = DeliveryResult(mid, B, GATEWAY, DeliveryStatus.EXPIRED, b"")
    b.log.append(
        b._fact(FactKind.DELIVERY_RESULT, mid, result=result, src_chain=A, extra={"bad": True})
    )
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert a.acked == {mid: DeliveryStatus.SUCCESS}
    assert b.delivered == {mid: DeliveryStatus.SUCCESS}


async def test_a_body_altered_under_the_genuine_id_is_replaced_by_the_refetched_one(
    make_env: MakeEnv,
) -> None:
    """H3 (a): the first endpoint keeps the id but alters the payload; the body another
    endpoint serves verifies, replaces the stored one, and that body is delivered."""
    node, a, b, _ = await make_env(verifier_factory=StrictVerifier)
    a.honest_elsewhere = True
    mid, _ = await a.send_message(B, RECEIVER, b"genuine", 5000)
    genuine = a.log[-1]
    assert genuine.message is not None
    a.log[-1] = replace(genuine, message=replace(genuine.message, payload=b"tampered"))
    a.genuine_bodies = {mid: genuine.message}
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    for role in Role:
        rec = await node.store.get(mid, role)
        assert rec is not None
        assert rec.message == genuine.message
    assert mid in b.delivered


async def test_own_chain_evidence_that_fails_is_retried_after_a_restart_never_rejected(
    tmp_path: Path,
) -> None:
    """H3 (b): one endpoint serving a bad bundle leaves the message stuck and retried with its
    reason, never REJECTED; after a restart (nothing in memory) the stored locator is enough
    to fetch it again once another endpoint has it."""
    a, b = FakeChain(A), FakeChain(B)
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000, bad=True)
    node = node_on(tmp_path, a, b, StrictVerifier())
    await node.start()

    async def retried() -> bool:
        rec = await node.store.get(mid, Role.SOURCE)
        return rec is not None and rec.attempts >= 3

    await eventually(retried, "retried")
    await node.stop()
    again = node_on(tmp_path, a, b, StrictVerifier())
    await again.start()
    rec = await again.store.get(mid, Role.SOURCE)
    assert rec is not None
    assert rec.state is State.OBSERVED
    assert rec.next_try_at != NEVER
    assert rec.last_error is not None
    assert "receipt_proof" in rec.last_error
    stuck = await again.store.stuck(rec.state_since + 1e6, 1.0)
    assert [(s.id, s.state) for s in stuck] == [(mid, State.OBSERVED)]
    a.honest_elsewhere = True
    try:
        await eventually(lambda: all_in(again, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
        assert mid in b.delivered
    finally:
        await again.stop()


async def test_a_lagging_endpoints_height_verdict_is_retried_on_the_own_chain(
    make_env: MakeEnv,
) -> None:
    """H3 (c): trust's EvidenceRejected(check="height") for a fact of our own chain (an
    endpoint behind the others) is retried until it verifies, not a rejection."""
    node, a, b, verifier = await make_env(verifier_factory=StrictVerifier)
    assert isinstance(verifier, StrictVerifier)
    verifier.lagging = 6
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert verifier.lagging == 0
    assert mid in b.delivered


class DroppingLink:
    """A peer link that answers "accepted" and drops the items ``drop`` times (a lost commit
    at the destination, or a lying peer), then passes them to the real handler."""

    name = "peer-b"

    def __init__(self, node: GatewayNode, drop: int) -> None:
        self.node = node
        self.drop = drop
        self.calls = 0

    async def forward(self, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        self.calls += 1
        if self.drop > 0:
            self.drop -= 1
            return [Verdict(i.id, VerdictKind.ACCEPTED) for i in items]
        return await self.node.handler.handle_forward("peer-a", items)

    async def acknowledge(self, items: Sequence[Any]) -> Sequence[Verdict]:
        raise AssertionError("not used")


async def test_a_forwarded_message_whose_forward_was_lost_is_forwarded_again(
    tmp_path: Path,
) -> None:
    """M2: a Forward answered "accepted" but never persisted leaves the source FORWARDED; after
    recheck_after it is forwarded again and the message is delivered and acknowledged."""
    a, b = FakeChain(A), FakeChain(B)
    settings = replace(FAST, recheck_after=0.2)
    dst = GatewayNode(
        store=SqliteStore(tmp_path / "dst"),
        adapters={B: b},
        verifier=FakeVerifier(),
        routes=[(A, B)],
        peer_chains={"peer-a": [A]},
        links={},
        settings=settings,
        start_heights={B: 0},
    )
    link = DroppingLink(dst, drop=1)
    src = GatewayNode(
        store=SqliteStore(tmp_path / "src"),
        adapters={A: a},
        verifier=FakeVerifier(),
        routes=[(A, B)],
        links={B: link},
        peer_chains={"peer-b": [B]},
        settings=settings,
        start_heights={A: 0},
    )
    dst.pipeline.links[A] = _AckBack(src)
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await dst.start()
    await src.start()
    try:
        await eventually(lambda: all_in(src, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
        assert link.calls >= 2
        assert mid in b.delivered
        assert a.acked == {mid: DeliveryStatus.SUCCESS}
    finally:
        await src.stop()
        await dst.stop()


class _AckBack:
    """The destination's link back to the source (acknowledgements only)."""

    name = "peer-a"

    def __init__(self, src: GatewayNode) -> None:
        self.src = src

    async def forward(self, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        raise AssertionError("not used")

    async def acknowledge(self, items: Sequence[Any]) -> Sequence[Verdict]:
        return await self.src.handler.handle_acknowledge("peer-b", items)


async def test_a_forward_for_a_closed_id_sends_the_result_again(make_env: MakeEnv) -> None:
    """M2: when the destination already forwarded a result and the source asks again (after
    recheck_after), the answer is accepted and the stored result is sent once more, without a
    state change (review 2, R6)."""
    node, a, _, _ = await make_env(replace(FAST, recheck_after=0.1))
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.DESTINATION, State.RESULT_FORWARDED), "r")
    fact = a.log[0]
    assert fact.message is not None
    assert fact.evidence is not None
    await asyncio.sleep(0.15)  # older than recheck_after (the clock is real time)
    with capture_logs() as logs:
        [v] = await node.handler.handle_forward("local", [ForwardItem(mid, fact.message, {})])
        assert v.kind is VerdictKind.ACCEPTED

        async def resent() -> bool:
            return any(e["event"] == "result_resent" for e in logs)

        await eventually(resent, "the result sent again")
    assert await _count(node, mid, State.RESULT_FORWARDED, 1)
    assert not await _count(node, mid, State.RESULT_FORWARDED, 2)


async def _count(node: GatewayNode, mid: bytes, state: State, n: int) -> bool:
    hist = [h for h in await node.store.history(mid) if h.role is Role.DESTINATION]
    return sum(1 for h in hist if h.state is state and h.kind == "state") >= n


async def test_duplicate_items_in_a_forward_batch_are_verified_once(make_env: MakeEnv) -> None:
    """M3: 500 copies of one item cost one verification; garbage items of distinct ids from one
    peer write a bounded number of rejected attempts."""
    node, a, _, verifier = await make_env(peer_chains={"peer-a": [A]})
    await node.store.open()
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    fact = a.log[-1]
    assert fact.message is not None
    assert fact.evidence is not None
    item = ForwardItem(mid, fact.message, fact.evidence.bundle)
    verdicts = await node.handler.handle_forward("peer-a", [item] * 500)
    assert {v.kind for v in verdicts} == {VerdictKind.ACCEPTED}
    assert len(verdicts) == 500
    assert verifier.calls == 1
    garbage = [
        ForwardItem(bytes([i % 256, i // 256]) * 16, fact.message, {"id": "00"}) for i in range(300)
    ]
    for start in range(0, len(garbage), 50):  # within the delivery stage's bound each time
        verdicts = await node.handler.handle_forward("peer-a", garbage[start : start + 50])
        assert {v.kind for v in verdicts} == {VerdictKind.REJECTED}
    recorded = 0
    for g in garbage:
        recorded += len(await node.store.rejected(g.id))
    assert recorded == REJECTED_WRITES_PER_PEER


class GatedVerifier(FakeVerifier):
    """Verification waits until the test opens the gate (an expensive check in progress)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = 0

    async def verify_message(
        self, message: Message, message_id: bytes, bundle: Mapping[str, Any]
    ) -> None:
        self.started += 1
        await self.gate.wait()
        await super().verify_message(message, message_id, bundle)


async def test_an_id_being_verified_is_not_verified_again_by_a_concurrent_forward(
    make_env: MakeEnv,
) -> None:
    """M3: copies of an item in concurrent batches wait ("retry") while the first copy is
    verified, then the id is answered from the store; one verification in all."""
    node, a, _, verifier = await make_env(
        peer_chains={"peer-a": [A]}, verifier_factory=GatedVerifier
    )
    assert isinstance(verifier, GatedVerifier)
    await node.store.open()
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    fact = a.log[-1]
    assert fact.message is not None
    assert fact.evidence is not None
    item = ForwardItem(mid, fact.message, fact.evidence.bundle)
    first = asyncio.create_task(node.handler.handle_forward("peer-a", [item]))

    async def verifying() -> bool:
        return verifier.started == 1

    await eventually(verifying, "the first copy being verified")
    copies = await asyncio.gather(
        *(node.handler.handle_forward("peer-a", [item]) for _ in range(20))
    )
    assert {v.kind for [v] in copies} == {VerdictKind.RETRY}
    verifier.gate.set()
    [v] = await first
    assert v.kind is VerdictKind.ACCEPTED
    [v] = await node.handler.handle_forward("peer-a", [item])
    assert (v.kind, v.reason) == (VerdictKind.ACCEPTED, "already known")
    assert (verifier.started, verifier.calls) == (1, 1)


async def test_a_false_already_delivered_does_not_strand_the_message(make_env: MakeEnv) -> None:
    """L1: after a failed submission the chain's endpoint claims the id delivered when it is
    not; after recheck_after without the result fact the delivery is submitted anyway."""
    settings = replace(FAST, recheck_after=0.1)
    node, a, _, _ = await make_env(settings, chain_factory=LyingChain)
    b = node.adapters[B]
    assert isinstance(b, LyingChain)
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    b.claim_delivered.add(mid)
    b.fail_deliveries = 1
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert mid in b.delivered


async def test_a_false_already_acknowledged_does_not_strand_the_message(make_env: MakeEnv) -> None:
    """L1: after a failed acknowledgeResults the source chain's endpoint claims the id
    acknowledged when it is not; after recheck_after without the fact it is submitted anyway."""
    settings = replace(FAST, recheck_after=0.1)
    node, a, _, _ = await make_env(settings, chain_factory=LyingChain)
    assert isinstance(a, LyingChain)
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    a.claim_acked.add(mid)
    a.fail_acks = 1
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert a.acked == {mid: DeliveryStatus.SUCCESS}
