"""Second attacker review (issue 8): each test performs one attack on the fixes of the first
review and asserts that it fails. Built on the fakes of test_pipeline and test_pipeline_attacks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from structlog.testing import capture_logs

from adapters.base import ChainStatus, Fact, FactKind, Submission
from relay.links import ForwardItem
from relay.store import Role, State
from tests.unit.relay.test_pipeline import (
    FAST,
    B,
    FakeChain,
    MakeEnv,
    _make_env,
    all_in,
    eventually,
)
from tests.unit.relay.test_pipeline_attacks import RECEIVER, LyingChain, ack_fact
from verifier.messages import DeliveryStatus, Message

__all__ = ["_make_env"]


async def test_r1_an_ack_fact_confirmed_by_its_own_endpoint_does_not_close_the_row(
    make_env: MakeEnv,
) -> None:
    """The endpoint that invents the `acknowledged` fact also answers sentState=2 at latest.
    The confirmation is read at the final block from every endpoint, the honest ones disagree:
    the row stays open and is acknowledged on chain for real once the destination is back."""
    node, a, b, _ = await make_env(chain_factory=LyingChain)
    assert isinstance(a, LyingChain)
    b.down = True  # destination slow: the row sits in FORWARDED
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.FORWARDED), "forwarded")
    a.claim_acked.add(mid)
    a.log.append(ack_fact(a, mid, DeliveryStatus.SUCCESS))
    await asyncio.sleep(0.5)
    rec = await node.store.get(mid, Role.SOURCE)
    assert rec is not None
    assert rec.state is State.FORWARDED
    b.down = False
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "closed")
    assert a.acked == {mid: DeliveryStatus.SUCCESS}
    assert mid in b.delivered


async def test_r2_a_guessed_status_ack_fact_does_not_close_a_result_verified_row(
    make_env: MakeEnv,
) -> None:
    """With a verified result, status equality is not enough: the chain must say acknowledged
    at its final block. The row waits for acknowledgeResults to be mined."""
    node, a, _, _ = await make_env(chain_factory=LyingChain)
    assert isinstance(a, LyingChain)
    a.fail_acks = 10**9  # acknowledgeResults keeps timing out for a while
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.RESULT_VERIFIED), "rv")
    a.log.append(ack_fact(a, mid, DeliveryStatus.SUCCESS))  # invented, status guessed
    await asyncio.sleep(0.5)
    rec = await node.store.get(mid, Role.SOURCE)
    assert rec is not None
    assert rec.state is State.RESULT_VERIFIED
    a.fail_acks = 0
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "closed")
    assert a.acked == {mid: DeliveryStatus.SUCCESS}


async def test_r3_a_delivery_the_chain_has_is_not_resubmitted_when_its_fact_is_missed(
    make_env: MakeEnv,
) -> None:
    """The chain has the delivery (another relayer) but no result fact is observed: the final
    state says delivered, so nothing is resubmitted; the row waits for the fact."""
    node, a, b, _ = await make_env(replace(FAST, recheck_after=0.1))
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    b.delivered[mid] = DeliveryStatus.SUCCESS  # delivered earlier; its fact not observable
    await node.start()
    await asyncio.sleep(3.0)
    sends = sum(1 for call in b.deliver_calls if mid in call)
    rec = await node.store.get(mid, Role.DESTINATION)
    assert rec is not None
    assert sends <= 1
    assert rec.state is State.DELIVERY_SUBMITTED


class ServesById(FakeChain):
    """A chain whose observed pages leave a result fact out; asked by id, it serves it."""

    def __init__(self, chain: str) -> None:
        super().__init__(chain)
        self.hidden: dict[bytes, Fact] = {}
        self.asked_by_id: list[bytes] = []

    async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
        start = len(self.log)
        sub = await super().deliver(deliveries)
        for fact in self.log[start:]:
            self.hidden[fact.id] = fact
        self.log[start:] = []
        return sub

    async def refetch(self, fact: Fact, *, avoid: frozenset[str]) -> Fact:
        if fact.kind is FactKind.DELIVERY_RESULT and fact.id in self.hidden:
            self.asked_by_id.append(fact.id)
            return self.hidden[fact.id]
        return await super().refetch(fact, avoid=avoid)


async def test_r3b_a_missed_result_fact_is_fetched_by_id_and_the_message_completes(
    make_env: MakeEnv,
) -> None:
    node, a, b, _ = await make_env(replace(FAST, recheck_after=0.1), chain_factory=ServesById)
    assert isinstance(b, ServesById)
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert mid in b.asked_by_id
    assert sum(1 for call in b.deliver_calls if mid in call) == 1


async def test_r4_invented_sent_facts_are_rejected_and_do_not_stall_the_chain(
    make_env: MakeEnv,
) -> None:
    """queue_bound invented MessageSent facts (bad proofs, never sent on chain) no longer hold
    the verify stage: the chain's final state says never sent, they end rejected as
    ``invented_fact``, and an honest message sent afterwards is delivered."""
    node, a, b, _ = await make_env(replace(FAST, queue_bound=5))
    fakes = []
    for i in range(5):
        fid, _ = await a.send_message(B, RECEIVER, b"fake%d" % i, 5000, bad=True, invented=True)
        fakes.append(fid)
    await node.start()
    good, _ = await a.send_message(B, RECEIVER, b"honest", 5000)
    await eventually(lambda: all_in(node, [good], Role.SOURCE, State.ACKNOWLEDGED), "honest")
    await eventually(lambda: all_in(node, fakes, Role.SOURCE, State.REJECTED), "rejected")
    assert good in b.delivered
    assert not set(fakes) & set(b.delivered)
    rejected = await node.store.rejected(fakes[0])
    assert any(r.check == "invented_fact" for r in rejected)


async def test_r4b_a_real_message_with_bad_evidence_is_never_rejected_and_holds_no_slot(
    make_env: MakeEnv,
) -> None:
    """A genuine message (sentState 1) whose evidence no endpoint proves retries and shows as
    stuck, never rejected; while it retries, it does not keep others out of the stage."""
    node, a, _, _ = await make_env(replace(FAST, queue_bound=2))
    stuck = [(await a.send_message(B, RECEIVER, b"s%d" % i, 5000, bad=True))[0] for i in range(2)]
    await node.start()
    good, _ = await a.send_message(B, RECEIVER, b"honest", 5000)
    await eventually(lambda: all_in(node, [good], Role.SOURCE, State.ACKNOWLEDGED), "honest")
    for sid in stuck:
        rec = await node.store.get(sid, Role.SOURCE)
        assert rec is not None
        assert rec.state is State.OBSERVED
        assert rec.attempts > 0


class SlowFinality(FakeChain):
    """A delivery is final (its fact observable, deliveryStatus at the final block set) only
    `lag` seconds after it was mined, like Ethereum's ~13 min finality vs a short recheck."""

    lag = 1.5

    def __init__(self, chain: str) -> None:
        super().__init__(chain)
        self.unfinal: set[bytes] = set()
        self.final_head = 0

    async def status(self) -> ChainStatus:
        return ChainStatus(self.chain, len(self.log) + 1, self.final_head, self.time)

    async def delivery_status(
        self, message_id: bytes, *, final: bool = False
    ) -> DeliveryStatus | None:
        if final and message_id in self.unfinal:
            return None
        return await super().delivery_status(message_id, final=final)

    async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
        start = len(self.log)
        sub = await super().deliver(deliveries)
        held = self.log[start:]
        del self.log[start:]
        ids = {f.id for f in held}
        self.unfinal |= ids
        height = len(self.log) + 1

        async def later() -> None:
            await asyncio.sleep(self.lag)
            self.log.extend(held)
            self.unfinal -= ids
            self.final_head = max(self.final_head, height)

        if held:
            asyncio.get_running_loop().create_task(later())
        return Submission(sub.tx_hash, height, sub.endpoint)


async def test_r5_slow_finality_does_not_resubmit_deliveries(make_env: MakeEnv) -> None:
    """Rechecks read at the final block and wait while the submission's block is not final:
    one deliverMessages and one acknowledgeResults per message."""
    node, a, b, _ = await make_env(replace(FAST, recheck_after=0.1), chain_factory=SlowFinality)
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert sum(1 for call in b.deliver_calls if mid in call) == 1
    assert sum(1 for call in a.ack_calls if mid in call) == 1


async def test_r5b_a_dropped_delivery_is_resubmitted_once_after_its_block_is_final(
    make_env: MakeEnv,
) -> None:
    """A deliverMessages never mined: the final state says not delivered after the
    submission's block, so it is submitted again, once."""
    node, a, b, _ = await make_env(replace(FAST, recheck_after=0.1), chain_factory=LyingChain)
    assert isinstance(b, LyingChain)
    b.drop_deliveries = 1
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.SOURCE, State.ACKNOWLEDGED), "acked")
    assert mid in b.delivered


async def test_r6_a_peer_repeating_forward_makes_no_state_changes(make_env: MakeEnv) -> None:
    """A repeated Forward for an id whose result was forwarded re-sends the stored result
    without changing the row's state: no history rows per repeat."""
    node, a, _, _ = await make_env(
        replace(FAST, recheck_after=0.05), peer_chains={"peer-a": ["chain-a"]}
    )
    mid, _ = await a.send_message(B, RECEIVER, b"x", 5000)
    await node.start()
    await eventually(lambda: all_in(node, [mid], Role.DESTINATION, State.RESULT_FORWARDED), "rf")
    before = [h for h in await node.store.history(mid) if h.role is Role.DESTINATION]
    fact = a.log[0]
    assert fact.message is not None
    with capture_logs() as logs:
        for _ in range(20):
            await asyncio.sleep(0.08)
            verdicts = await node.handler.handle_forward(
                "peer-a", [ForwardItem(mid, fact.message, {})]
            )
            assert [v.kind.value for v in verdicts] == ["accepted"]
        await asyncio.sleep(0.3)
    resent = [e for e in logs if e["event"] == "result_resent"]
    assert 1 <= len(resent) <= 20
    after = [h for h in await node.store.history(mid) if h.role is Role.DESTINATION]
    assert after == before
    delivered = sum(1 for h in after if h.state is State.DELIVERED and h.kind == "state")
    assert delivered == 1
    rec = await node.store.get(mid, Role.DESTINATION)
    assert rec is not None
    assert rec.state is State.RESULT_FORWARDED
