"""One GatewayNode serving Anvil and the FISCO devnode (routes both ways, the in-process link,
the real FactVerifier): messages are delivered once and acknowledged once, a reverting receiver
gives FAILED on the acknowledgement, an expired message closes as expired, and a batch of 200
goes through in batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from adapters.base import (
    ChainAdapter,
    ChainStatus,
    ChainUnavailable,
    Fact,
    FactPage,
    Submission,
)
from relay.node import GatewayNode
from relay.store import MessageFilter, Role, State
from tests.integration.relay.pipeline_env import (
    Chains,
    build_node,
    describe,
    on_chain_counts,
    two_chains,
)
from verifier.messages import DeliveryResult, DeliveryStatus, Message

pytestmark = pytest.mark.integration


@pytest.fixture(name="chains", scope="module")
async def _chains() -> AsyncIterator[Chains]:
    """Anvil and the devnode with gateways that know each other, shared by the module."""
    async with two_chains() as chains:
        yield chains


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.2)


async def source_states(node: GatewayNode) -> dict[bytes, State]:
    out: dict[bytes, State] = {}
    after = None
    while True:
        page = await node.store.list_messages(
            MessageFilter(role=Role.SOURCE), after=after, limit=500
        )
        out.update((r.id, r.state) for r in page.items)
        if page.next_after is None:
            return out
        after = page.next_after


def all_acknowledged(node: GatewayNode, ids: list[bytes]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        states = await source_states(node)
        return all(states.get(i) is State.ACKNOWLEDGED for i in ids)

    return check


async def test_messages_both_ways_failed_and_expired(chains: Chains, tmp_path: Path) -> None:
    """Both directions delivered and acknowledged once; FAILED and EXPIRED close as such."""
    evm, fisco = chains.evm.chain, chains.fisco.chain
    d = await describe(chains, tmp_path)
    start = {evm: d["evm"]["start"], fisco: d["fisco"]["start"]}
    node = build_node(d)
    await node.start()
    try:
        ok: list[bytes] = []
        for src, dst in ((evm, fisco), (fisco, evm)):
            for i in range(3):
                sent = await node.send_message(src, dst, chains.echo[dst], b"hi %d" % i, 3600)
                ok.append(sent.id)
        failed = [
            (await node.send_message(evm, fisco, chains.reverter[fisco], b"r", 3600)).id,
            (await node.send_message(fisco, evm, chains.reverter[evm], b"r", 3600)).id,
        ]
        # Already past its timeout at the destination: the destination records EXPIRED.
        dst_now = (await chains.fisco.adapter.status()).timestamp
        expired, _ = await chains.evm.adapter.send_message(
            fisco, chains.echo[fisco], b"late", dst_now
        )
        ids = [*ok, *failed, expired]
        await eventually(all_acknowledged(node, ids), "every message acknowledged", 90)
        for mid in ids:
            rec = await node.store.get(mid, Role.SOURCE)
            assert rec is not None
            want = DeliveryStatus.SUCCESS
            if mid in failed:
                want = DeliveryStatus.FAILED
            elif mid == expired:
                want = DeliveryStatus.EXPIRED
            assert rec.ack_status is want, mid.hex()
        assert await chains.fisco.adapter.delivery_status(expired) is DeliveryStatus.EXPIRED
        assert await chains.evm.adapter.sent_state(expired) == 2
        hist = [h.state for h in await node.store.history(expired)]
        assert State.EXPIRED in hist
        assert {e.hop for e in await node.store.evidence(ok[0])} == {
            "message_sent",
            "delivery_result",
        }
    finally:
        await node.stop()
    counts = await on_chain_counts(chains, start)
    for mid in ids:
        assert counts["delivered"].get(mid) == 1, mid.hex()
        assert counts["acknowledged"].get(mid) == 1, mid.hex()


async def test_a_batch_of_200_one_way(chains: Chains, tmp_path: Path) -> None:
    """200 messages from Anvil to the devnode: all acknowledged, deliveries in batches."""
    evm, fisco = chains.evm.chain, chains.fisco.chain
    d = await describe(chains, tmp_path, batch_size=50, batch_wait=0.5)
    start = {evm: d["evm"]["start"], fisco: d["fisco"]["start"]}
    dst_now = (await chains.fisco.adapter.status()).timestamp
    ids: list[bytes] = []
    for chunk in range(4):
        sends = [
            chains.evm.adapter.send_message(
                fisco, chains.echo[fisco], b"b%d" % (chunk * 50 + i), dst_now + 3600
            )
            for i in range(50)
        ]
        ids.extend(mid for mid, _ in await asyncio.gather(*sends))
    node = build_node(d)
    await node.start()
    try:
        await eventually(all_acknowledged(node, ids), "200 acknowledged", 100)
        heights = set()
        for mid in ids:
            for h in await node.store.history(mid):
                if h.role is Role.DESTINATION and h.state is State.DELIVERY_SUBMITTED:
                    heights.add(h.tx_hash)
        assert 4 <= len(heights) < 200, "deliveries went out in batches of up to 50"
    finally:
        await node.stop()
    counts = await on_chain_counts(chains, start)
    assert sorted(counts["delivered"]) == sorted(ids)
    assert set(counts["delivered"].values()) == {1}
    assert set(counts["acknowledged"].values()) == {1}


class Outage:
    """The devnode's adapter with deliveries failing as if the chain were unreachable."""

    def __init__(self, inner: ChainAdapter) -> None:
        self.inner = inner
        self.chain = inner.chain
        self.down = True

    def initial_cursor(self, height: int = 0) -> str:
        return self.inner.initial_cursor(height)

    async def facts(self, cursor: str, *, max_blocks: int = 1000) -> FactPage:
        return await self.inner.facts(cursor, max_blocks=max_blocks)

    async def refetch(self, fact: Fact, *, avoid: frozenset[str]) -> Fact:
        return await self.inner.refetch(fact, avoid=avoid)

    async def status(self) -> ChainStatus:
        return await self.inner.status()

    async def send_message(
        self, dst_chain: str, receiver: bytes, payload: bytes, timeout: int
    ) -> tuple[bytes, Submission]:
        return await self.inner.send_message(dst_chain, receiver, payload, timeout)

    async def anchor(
        self, contract: bytes, seq: int, head_hash: bytes, checkpoint_digest: bytes
    ) -> Submission:
        return await self.inner.anchor(contract, seq, head_hash, checkpoint_digest)

    async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
        if self.down:
            raise ChainUnavailable("connection refused", chain=self.chain, endpoint="test")
        return await self.inner.deliver(deliveries)

    async def acknowledge(self, results: Sequence[DeliveryResult]) -> Submission:
        return await self.inner.acknowledge(results)

    async def seal(self, *, force: bool = False) -> Submission | None:
        return await self.inner.seal(force=force)

    async def requeue(self, seal_number: int) -> Submission:
        return await self.inner.requeue(seal_number)

    async def delivery_status(
        self, message_id: bytes, *, final: bool = False
    ) -> DeliveryStatus | None:
        if self.down:
            raise ChainUnavailable("connection refused", chain=self.chain, endpoint="test")
        return await self.inner.delivery_status(message_id, final=final)

    async def sent_state(self, message_id: bytes, *, final: bool = False) -> int:
        return await self.inner.sent_state(message_id, final=final)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_destination_down_for_a_while(chains: Chains, tmp_path: Path) -> None:
    """Deliveries to the devnode fail: the messages wait, visible as stuck with their stage,
    attempts and last error; when the chain is back they are delivered and acknowledged once."""
    evm, fisco = chains.evm.chain, chains.fisco.chain
    d = await describe(chains, tmp_path, stuck_after=1.0, retry_max=0.5)
    start = {evm: d["evm"]["start"], fisco: d["fisco"]["start"]}
    node = build_node(d)
    outage = Outage(node.adapters[fisco])
    node.adapters[fisco] = outage
    node.pipeline.adapters[fisco] = outage
    await node.start()
    try:
        ids = [
            (await node.send_message(evm, fisco, chains.echo[fisco], b"w%d" % i, 3600)).id
            for i in range(3)
        ]

        async def visible() -> bool:
            stuck = await node.store.stuck(node.pipeline.clock(), 1.0)
            waiting = {
                s.id
                for s in stuck
                if s.role is Role.DESTINATION
                and s.state is State.VERIFIED
                and s.attempts > 0
                and "ChainUnavailable" in (s.last_error or "")
            }
            return waiting == set(ids)

        await eventually(visible, "the waiting messages shown as stuck", 60)
        outage.down = False
        await eventually(all_acknowledged(node, ids), "acknowledged after the outage", 60)
    finally:
        await node.stop()
    counts = await on_chain_counts(chains, start)
    for mid in ids:
        assert counts["delivered"].get(mid) == 1
        assert counts["acknowledged"].get(mid) == 1
