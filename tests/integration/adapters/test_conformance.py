"""The adapter conformance suite: the same test code against Anvil and against the FISCO devnode.

Each environment (env_evm.py, env_fisco.py) deploys the gateway contract, registers the chain
itself as a destination and yields a configured adapter, so that one chain plays both ends of a
route: send, observe, verify, deliver, observe the result, acknowledge, observe the ack.
A new chain family passes this file unchanged.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from adapters.base import Fact, FactKind
from tests.integration.adapters.env import ChainEnv, read_all
from verifier.evidence import verify_bundle
from verifier.messages import DeliveryStatus, message_id, result_hash
from verifier.types import VerifiedEvidence

pytestmark = pytest.mark.integration

PING = "ping(string,address,bytes,uint64)"


@pytest.fixture(name="env", scope="module", params=["evm", "fisco"])
async def _env(request: pytest.FixtureRequest) -> AsyncIterator[ChainEnv]:
    # Imported here so that one family's missing extras cannot stop the other from running.
    make: Callable[[], AbstractAsyncContextManager[ChainEnv]]
    if request.param == "evm":
        from tests.integration.adapters.env_evm import evm_env  # noqa: PLC0415

        make = evm_env
    else:
        from tests.integration.adapters.env_fisco import fisco_env  # noqa: PLC0415

        make = fisco_env
    async with make() as env:
        yield env


async def settle(env: ChainEnv) -> None:
    """Make everything sent so far provable and final (a seal on FISCO, blocks on Anvil)."""
    while await env.adapter.seal(force=True) is not None:
        pass
    await env.driver.finalize()


def verified(env: ChainEnv, fact: Fact) -> VerifiedEvidence:
    """What a relay would do: the bundle's trust pinned to this chain's root, then verify."""
    assert fact.evidence is not None, f"{fact.kind} fact without evidence"
    bundle: dict[str, Any] = copy.deepcopy(fact.evidence.bundle)
    bundle["trust"] = {**bundle["trust"], **env.trust}
    evidence = verify_bundle(bundle)
    assert evidence.log is not None
    assert evidence.log.address == env.gateway, "a fact's log must come from the gateway"
    return evidence


def of_kind(facts: list[Fact], kind: FactKind, ids: set[bytes]) -> list[Fact]:
    return [f for f in facts if f.kind is kind and f.id in ids]


async def test_a_message_from_an_account_is_observed_with_evidence_that_verifies(
    env: ChainEnv,
) -> None:
    start = env.adapter.initial_cursor((await env.adapter.status()).head)
    now = await env.driver.timestamp()
    mid, submission = await env.adapter.send_message(env.chain, env.ping_pong, b"hello", now + 3600)
    assert submission.height > 0
    await settle(env)
    facts, _ = await read_all(env.adapter, start)
    [fact] = of_kind(facts, FactKind.MESSAGE_SENT, {mid})
    assert fact.message is not None
    assert (fact.message.payload, fact.message.receiver) == (b"hello", env.ping_pong)
    assert (fact.message.src_chain, fact.message.dst_chain) == (env.chain, env.chain)
    assert fact.message.src_gateway == env.gateway
    assert message_id(fact.message, env.hasher) == mid
    evidence = verified(env, fact)
    assert evidence.event is not None
    assert mid in _bytes_in(evidence.event.args), "the proven event must name the id"


async def test_a_message_from_a_contract_delivers_acknowledges_and_reads_back(
    env: ChainEnv,
) -> None:
    start = env.adapter.initial_cursor((await env.adapter.status()).head)
    now = await env.driver.timestamp()
    _, ok = await env.driver.transact(
        env.ping_pong, PING, [env.chain, env.ping_pong, b"p", now + 3600], account=0
    )
    assert ok
    await settle(env)
    facts, cursor = await read_all(env.adapter, start)
    sent = [f for f in facts if f.kind is FactKind.MESSAGE_SENT and f.message is not None]
    [ping] = [f for f in sent if f.message and f.message.sender == env.ping_pong]
    assert ping.message is not None
    verified(env, ping)
    assert await env.adapter.sent_state(ping.id) == 1
    assert await env.adapter.delivery_status(ping.id) is None

    await env.adapter.deliver([(ping.id, ping.message)])
    await env.adapter.deliver([(ping.id, ping.message)])  # a retried batch is a no-op
    await settle(env)
    facts, cursor = await read_all(env.adapter, cursor)
    [result] = of_kind(facts, FactKind.DELIVERY_RESULT, {ping.id})
    assert result.result is not None
    assert result.result.status is DeliveryStatus.SUCCESS
    assert result.src_chain == env.chain
    assert result.result_hash == result_hash(result.result, env.hasher)
    verified(env, result)
    assert await env.adapter.delivery_status(ping.id) is DeliveryStatus.SUCCESS
    # The receiver answered the ping from inside its callback: a pong, sent by a contract.
    pongs = [f for f in facts if f.kind is FactKind.MESSAGE_SENT and f.message is not None]
    assert [p.message.sender for p in pongs if p.message] == [env.ping_pong]

    await env.adapter.acknowledge([result.result])
    await env.adapter.acknowledge([result.result])  # repeat = no-op
    await settle(env)
    facts, _ = await read_all(env.adapter, cursor)
    [ack] = of_kind(facts, FactKind.ACKNOWLEDGED, {ping.id})
    assert ack.ack_status is DeliveryStatus.SUCCESS
    assert await env.adapter.sent_state(ping.id) == 2


async def test_an_expired_message_is_delivered_as_expired(env: ChainEnv) -> None:
    start = env.adapter.initial_cursor((await env.adapter.status()).head)
    now = await env.driver.timestamp()
    mid, _ = await env.adapter.send_message(env.chain, env.ping_pong, b"late", now)
    await settle(env)
    facts, cursor = await read_all(env.adapter, start)
    [sent] = of_kind(facts, FactKind.MESSAGE_SENT, {mid})
    assert sent.message is not None
    await env.adapter.deliver([(mid, sent.message)])
    await settle(env)
    facts, _ = await read_all(env.adapter, cursor)
    [result] = of_kind(facts, FactKind.DELIVERY_RESULT, {mid})
    assert result.result is not None
    assert (result.result.status, result.result.result) == (DeliveryStatus.EXPIRED, b"")
    verified(env, result)


async def test_restarting_from_the_cursor_misses_nothing_and_repeats_nothing(
    env: ChainEnv,
) -> None:
    start = env.adapter.initial_cursor((await env.adapter.status()).head)
    now = await env.driver.timestamp()
    ids = []
    for i in range(4):
        mid, _ = await env.adapter.send_message(env.chain, env.ping_pong, b"r%d" % i, now + 3600)
        ids.append(mid)
        if i % 2:
            await settle(env)
    await settle(env)
    whole, _ = await read_all(env.adapter, start)

    cursor, pieces = start, list[Fact]()
    for _ in range(1000):
        adapter = env.new_adapter()  # a restart: only the cursor survives
        try:
            page = await adapter.facts(cursor, max_blocks=1)
        finally:
            await adapter.close()
        pieces.extend(page.facts)
        if page.cursor == cursor:
            break
        cursor = page.cursor
    key = [(f.kind, f.id) for f in whole]
    assert [(f.kind, f.id) for f in pieces] == key
    assert len(set(key)) == len(key)
    assert {f.id for f in whole if f.kind is FactKind.MESSAGE_SENT} >= set(ids)


async def test_a_block_with_many_facts(env: ChainEnv) -> None:
    start = env.adapter.initial_cursor((await env.adapter.status()).head)
    now = await env.driver.timestamp()
    sends = [
        env.adapter.send_message(env.chain, env.ping_pong, b"m%d" % i, now + 3600)
        for i in range(12)
    ]
    ids = [mid for mid, _ in await asyncio.gather(*sends)]
    await settle(env)
    facts, cursor = await read_all(env.adapter, start)
    sent = {f.id: f for f in of_kind(facts, FactKind.MESSAGE_SENT, set(ids))}
    assert set(sent) == set(ids)
    batch = [(mid, sent[mid].message) for mid in ids]
    await env.adapter.deliver([(mid, m) for mid, m in batch if m is not None])
    await settle(env)
    facts, _ = await read_all(env.adapter, cursor)
    results = of_kind(facts, FactKind.DELIVERY_RESULT, set(ids))
    assert sorted(f.id for f in results) == sorted(ids)
    assert len({f.height for f in results}) == 1, "one batch, one block"
    for fact in results:
        verified(env, fact)


def _bytes_in(args: tuple[tuple[str, Any], ...]) -> set[bytes]:
    found: set[bytes] = set()
    for _, value in args:
        values = value if isinstance(value, tuple | list) else (value,)
        found.update(v for v in values if isinstance(v, bytes))
    return found


async def test_an_audit_checkpoint_is_anchored(env: ChainEnv) -> None:
    """``anchor`` (relay/anchor.py) sends AuditAnchor.anchor from the relayer account; the
    auditor's reader (``gateway audit anchors``) finds it on the chain."""
    from adapters.evm.adapter import EvmAdapter  # noqa: PLC0415
    from relay.anchor import read_anchors  # noqa: PLC0415

    contract = await env.driver.deploy("AuditAnchor")
    head, digest = bytes(range(32)), bytes(range(32, 64))
    submission = await env.adapter.anchor(contract, 7, head, digest)
    if isinstance(env.adapter, EvmAdapter):
        url, family = env.adapter.settings.endpoints[0], "evm"
    else:
        url, family = env.adapter.settings.endpoints[0].url, "fisco"  # type: ignore[attr-defined]
    anchors = await read_anchors(url, "0x" + contract.hex(), family=family)
    assert [(a.seq, a.head_hash, a.checkpoint_digest) for a in anchors] == [
        (7, head.hex(), digest.hex())
    ]
    assert (anchors[0].tx_hash, anchors[0].block) == (submission.tx_hash, submission.height)
