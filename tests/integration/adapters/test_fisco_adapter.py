"""FiscoAdapter against the devnode: sealed facts with bundles that verify, the round trip
deliver -> seal -> result -> acknowledge, restarts from a cursor, reverted sends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import pytest

from adapters.base import Fact, FactKind
from adapters.fisco.adapter import FiscoAdapter
from tests.integration.adapters.env import ChainEnv, read_all
from tests.integration.adapters.env_fisco import CHAIN, FiscoDriver, fisco_env
from verifier.evidence import verify_bundle
from verifier.messages import DeliveryStatus, message_id, result_hash

pytestmark = pytest.mark.integration
FAR = 2**40


@pytest.fixture(name="env", scope="module")
async def _env() -> AsyncIterator[ChainEnv]:
    """One devnode with the gateway for the module."""
    async with fisco_env() as env:
        yield env


async def ping(env: ChainEnv, data: bytes = b"hi") -> str:
    tx, ok = await env.driver.transact(
        env.ping_pong,
        "ping(string,address,bytes,uint64)",
        [CHAIN, env.ping_pong, data, FAR],
        account=0,
    )
    assert ok
    return tx


def check_bundle(env: ChainEnv, fact: Fact) -> dict[str, Any]:
    assert fact.evidence is not None
    verified = verify_bundle(fact.evidence.bundle)
    log = verified.log
    assert log is not None
    assert log.address == env.gateway
    return fact.evidence.bundle


async def test_sealed_message_is_observed_with_a_bundle_that_verifies(env: ChainEnv) -> None:
    """A PingPong ping, sealed, is one message_sent fact whose bundle passes verify_bundle."""
    adapter = cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor((await adapter.status()).head + 1)
    await ping(env, b"first")
    assert await adapter.seal() is not None
    assert await adapter.seal() is None  # nothing pending any more
    facts, _ = await read_all(adapter, cursor, max_blocks=7)
    assert [f.kind for f in facts] == [FactKind.MESSAGE_SENT]
    fact = facts[0]
    assert fact.message is not None
    assert fact.message.dst_chain == CHAIN
    assert message_id(fact.message, env.hasher) == fact.id
    assert await adapter.sent_state(fact.id) == 1
    check_bundle(env, fact)
    assert fact.evidence is not None
    assert fact.evidence.seal_number is not None
    assert fact.evidence.bundle["trust"] == env.trust


async def test_round_trip_deliver_seal_result_acknowledge(env: ChainEnv) -> None:
    """deliver -> seal -> delivery_result fact -> acknowledge -> acknowledged fact."""
    adapter = cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor((await adapter.status()).head + 1)
    await ping(env, b"round")
    await adapter.seal()
    facts, cursor = await read_all(adapter, cursor, max_blocks=7)
    (sent,) = facts
    assert sent.message is not None
    await adapter.deliver([(sent.id, sent.message)])
    await adapter.deliver([(sent.id, sent.message)])  # delivered ids are no-ops
    assert await adapter.delivery_status(sent.id) is DeliveryStatus.SUCCESS
    await adapter.seal()
    facts, cursor = await read_all(adapter, cursor, max_blocks=7)
    kinds = sorted(f.kind for f in facts)
    # the ping's delivery result, and the pong the receiver sent from inside the delivery
    assert kinds == [FactKind.DELIVERY_RESULT, FactKind.MESSAGE_SENT]
    result = next(f for f in facts if f.kind is FactKind.DELIVERY_RESULT)
    assert result.result is not None
    assert result.id == sent.id
    assert result.src_chain == CHAIN
    assert result.result_hash == result_hash(result.result, env.hasher)
    check_bundle(env, result)
    await adapter.acknowledge([result.result])
    assert await adapter.sent_state(sent.id) == 2
    facts, _ = await read_all(adapter, cursor, max_blocks=7)
    (ack,) = facts
    assert ack.kind is FactKind.ACKNOWLEDGED
    assert ack.id == sent.id
    assert ack.ack_status is DeliveryStatus.SUCCESS
    assert ack.evidence is None


async def test_restart_from_cursor_misses_and_repeats_nothing(env: ChainEnv) -> None:
    """A fresh adapter resumes from a persisted cursor; a body sent many blocks before its seal
    (and before the cursor) is still found."""
    adapter = cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor((await adapter.status()).head + 1)
    await ping(env, b"early")
    driver = cast(FiscoDriver, env.driver)
    for _ in range(3):  # blocks between the body and its seal
        await driver.transact(env.ping_pong, "isPeer(string,address)", [CHAIN, env.ping_pong])
    _, cursor = await read_all(
        adapter, cursor, max_blocks=7
    )  # nothing sealed yet: no facts, cursor moves on
    await adapter.seal()
    await ping(env, b"late")
    await adapter.seal()
    restarted = cast(FiscoAdapter, env.new_adapter())
    first = await restarted.facts(cursor, max_blocks=1)
    rest, end = await read_all(restarted, first.cursor, max_blocks=7)
    facts = [*first.facts, *rest]
    payloads = [f.message.payload for f in facts if f.message is not None]
    assert len(facts) == 2
    assert len({f.id for f in facts}) == 2
    assert b"early" in payloads[0]
    assert b"late" in payloads[1]
    again, _ = await read_all(env.new_adapter(), end, max_blocks=7)
    assert again == []


async def test_message_in_a_reverted_transaction_is_never_reported(env: ChainEnv) -> None:
    """A send to an unknown destination reverts: no fact, and nothing to seal."""
    adapter = cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor((await adapter.status()).head + 1)
    _, ok = await env.driver.transact(
        env.ping_pong,
        "ping(string,address,bytes,uint64)",
        ["nowhere", env.ping_pong, b"x", FAR],
        account=0,
    )
    assert not ok
    assert await adapter.seal() is None
    facts, _ = await read_all(adapter, cursor, max_blocks=7)
    assert facts == []


async def test_send_message_from_the_sender_account(env: ChainEnv) -> None:
    """send_message returns the id the gateway assigned; the sealed fact names the sender."""
    adapter = cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor((await adapter.status()).head + 1)
    message_id_, submission = await adapter.send_message(CHAIN, env.ping_pong, b"direct", FAR)
    assert submission.height > 0
    assert await adapter.sent_state(message_id_) == 1
    await adapter.seal()
    facts, _ = await read_all(adapter, cursor, max_blocks=7)
    (fact,) = facts
    assert fact.id == message_id_
    assert fact.message is not None
    assert fact.message.sender != adapter.settings.gateway
    status = await adapter.status()
    assert status.final_head == status.head
    assert status.timestamp < 10**11


async def test_requeued_entries_are_reported_again_from_the_next_seal(env: ChainEnv) -> None:
    """requeue(n) puts a seal's entries back; the next seal reports them again (new seal
    number), with the body found far behind the cursor by a freshly started adapter."""
    adapter = cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor((await adapter.status()).head + 1)
    await ping(env, b"requeued")
    await adapter.seal()
    facts, cursor = await read_all(adapter, cursor, max_blocks=7)
    (first,) = facts
    assert first.evidence is not None
    assert first.evidence.seal_number is not None
    await adapter.requeue(first.evidence.seal_number)
    await adapter.seal()
    facts, _ = await read_all(env.new_adapter(), cursor, max_blocks=7)
    (again,) = facts
    assert again.id == first.id
    assert again.evidence is not None
    assert again.evidence.seal_number == first.evidence.seal_number + 1
    check_bundle(env, again)


async def test_seal_pacing_batches_within_a_block_but_never_strands_entries(
    env: ChainEnv,
) -> None:
    """Below seal_batch an adapter seals once per block; with no new block (a chain that makes
    blocks only for transactions), it seals anyway once seal_interval has passed."""
    base = cast(FiscoAdapter, env.adapter)
    adapter = FiscoAdapter(replace(base.settings, seal_interval=0.3))
    try:
        await ping(env, b"paced")
        head = (await adapter.status()).head
        adapter._last_seal = (head, time.monotonic())  # as if it had sealed in the head block
        assert await adapter.seal() is None, "a second seal in one block waits"
        await asyncio.sleep(0.35)
        assert await adapter.seal() is not None, "but not for ever"
        assert await adapter.seal(force=True) is None  # nothing left
    finally:
        await adapter.close()
