"""EvmAdapter against a real Anvil: observation with evidence, submissions, restart, reorgs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from adapters.base import (
    ConfigurationError,
    Fact,
    FactKind,
    RejectedByChain,
    UnexpectedResponse,
)
from adapters.evm.settings import EvmSettings
from tests.integration.adapters.env import read_all
from tests.integration.adapters.env_evm import CHAIN, EvmChainEnv, evm_env
from verifier.evidence import verify_bundle
from verifier.hashing import keccak256
from verifier.messages import DeliveryStatus, message_id

pytestmark = pytest.mark.integration


def run(test: Callable[[EvmChainEnv], Awaitable[None]], **settings: object) -> None:
    async def main() -> None:
        async with evm_env(**settings) as env:
            await test(env)

    asyncio.run(main())


async def ping(env: EvmChainEnv, data: bytes = b"hello") -> str:
    timeout = await env.driver.timestamp() + 3600
    tx, ok = await env.driver.transact(
        env.ping_pong,
        "ping(string,address,bytes,uint64)",
        [CHAIN, env.ping_pong, data, timeout],
        account=0,
    )
    assert ok
    return tx


def check_evidence(fact: Fact, trusted_hash: str) -> None:
    assert fact.evidence is not None
    bundle = dict(
        fact.evidence.bundle, trust=dict(fact.evidence.bundle["trust"], block_hash=trusted_hash)
    )
    verified = verify_bundle(bundle)
    assert verified.block_number == fact.height
    assert verified.event is not None
    assert verified.log is not None
    assert (
        "0x" + verified.log.address.hex()
        == fact.evidence.bundle["receipt"]["logs"][fact.log_index]["address"].lower()
    )


def test_observe_deliver_acknowledge_round_trip() -> None:
    """A ping is observed only once final, with evidence that verify_bundle accepts against the
    chain's own block hash; delivering it and acknowledging the result round-trips."""

    async def body(env: EvmChainEnv) -> None:
        adapter = env.adapter
        start = adapter.initial_cursor(await env.evm.head() + 1)
        tx = await ping(env)
        page = await adapter.facts(start)
        assert page.facts == ()  # not final yet
        assert page.cursor == start
        await env.driver.finalize()
        facts, cursor = await read_all(adapter, start)
        assert [f.kind for f in facts] == [FactKind.MESSAGE_SENT]
        sent = facts[0]
        assert sent.tx_hash == tx
        assert sent.message is not None
        assert sent.id == message_id(sent.message, keccak256)
        assert sent.endpoint == env.anvil.url
        canonical = await env.evm.block(sent.height)
        assert sent.block_hash == canonical["hash"]
        check_evidence(sent, canonical["hash"])
        assert await adapter.sent_state(sent.id) == 1
        assert await adapter.delivery_status(sent.id) is None

        delivered = await adapter.deliver([(sent.id, sent.message)])
        assert delivered.height > sent.height
        assert delivered.gas_used
        assert await adapter.delivery_status(sent.id) is DeliveryStatus.SUCCESS
        again = await adapter.deliver([(sent.id, sent.message)])  # delivered ids are no-ops
        assert again.height > delivered.height
        await env.driver.finalize()
        facts, cursor = await read_all(adapter, cursor)
        kinds = [f.kind for f in facts]
        # the delivery result, and the pong the receiver sent back through the gateway
        assert kinds.count(FactKind.DELIVERY_RESULT) == 1
        assert kinds.count(FactKind.MESSAGE_SENT) == 1
        result = next(f for f in facts if f.kind is FactKind.DELIVERY_RESULT)
        assert result.result is not None
        assert result.result.status is DeliveryStatus.SUCCESS
        assert result.src_chain == CHAIN
        assert result.id == sent.id
        check_evidence(result, (await env.evm.block(result.height))["hash"])

        await adapter.acknowledge([result.result])
        assert await adapter.sent_state(sent.id) == 2
        await env.driver.finalize()
        facts, _ = await read_all(adapter, cursor)
        acks = [f for f in facts if f.kind is FactKind.ACKNOWLEDGED]
        assert [(a.id, a.ack_status, a.evidence) for a in acks] == [
            (sent.id, DeliveryStatus.SUCCESS, None)
        ]
        status = await adapter.status()
        assert status.final_head == status.head - 2
        assert status.timestamp > 0
        assert await adapter.seal() is None

    run(body)


def test_send_message_uses_the_sender_account_and_reverts_are_rejections() -> None:
    """send_message returns the gateway's id from the sender account (not the relayer's); a
    reverting call is RejectedByChain with the decoded custom error; a wrong chain id is refused."""

    async def body(env: EvmChainEnv) -> None:
        adapter = env.adapter
        timeout = await env.driver.timestamp() + 600
        cursor = adapter.initial_cursor(await env.evm.head() + 1)
        sent_id, submission = await adapter.send_message(CHAIN, env.ping_pong, b"x", timeout)
        assert len(sent_id) == 32
        assert submission.height > 0
        await env.driver.finalize()
        facts, _ = await read_all(adapter, cursor)
        assert [f.id for f in facts] == [sent_id]
        assert facts[0].message is not None
        assert facts[0].message.sender == bytes.fromhex(env.evm.address(3)[2:])
        with pytest.raises(RejectedByChain, match="UnknownDestination"):
            await adapter.send_message("nowhere", env.ping_pong, b"x", timeout)
        with pytest.raises(RejectedByChain, match="UnknownSeal"):
            await adapter.requeue(7)
        # the nonce manager recovers: the next transaction goes through
        await adapter.send_message(CHAIN, env.ping_pong, b"y", timeout)
        wrong = env.adapter_with(chain_id=env.settings.chain_id + 1)
        try:
            with pytest.raises(ConfigurationError, match="eth_chainId"):
                await wrong.status()
        finally:
            await wrong.close()

    run(body)


def test_restart_from_cursor_misses_and_repeats_nothing() -> None:
    """Pages of a few blocks, a fresh adapter from each persisted cursor: every fact exactly
    once, in chain order; a reverted transaction's call and other contracts' logs are absent."""

    async def body(env: EvmChainEnv) -> None:
        cursor = env.adapter.initial_cursor(0)
        for i in range(4):
            await ping(env, bytes([i]))
            await env.evm.mine(1)
        # a reverted ping (unknown destination) and a ping on a look-alike gateway emit nothing
        _, ok = await env.driver.transact(
            env.ping_pong,
            "ping(string,address,bytes,uint64)",
            ["nowhere", env.ping_pong, b"", 9],
            account=0,
        )
        assert not ok
        fake = await env.driver.deploy("CrossChainGateway", [CHAIN, 1, 300000, 100000])
        await env.driver.transact(fake, "setDestination(string,uint32)", [CHAIN, 100], account=0)
        await env.driver.transact(
            fake, "sendMessage(string,address,bytes,uint64)", [CHAIN, env.ping_pong, b"z", 9]
        )
        await env.driver.finalize()
        seen: list[Fact] = []
        restarts = 0
        while True:
            adapter = env.new_adapter()
            page = await adapter.facts(cursor, max_blocks=3)
            seen.extend(page.facts)
            await adapter.close()
            restarts += 1
            if page.cursor == cursor:
                break
            cursor = page.cursor
        assert restarts > 3
        assert [f.kind for f in seen] == [FactKind.MESSAGE_SENT] * 4
        assert [f.height for f in seen] == sorted(f.height for f in seen)
        assert len({f.id for f in seen}) == 4

    run(body)


def test_reorg_below_finality_never_yields_a_dropped_block() -> None:
    """A ping in a block that anvil_reorg replaces before it is final is never reported with the
    dropped block's hash; every fact reported is in the canonical chain."""

    async def body(env: EvmChainEnv) -> None:
        adapter = env.adapter
        cursor = adapter.initial_cursor(await env.evm.head() + 1)
        await ping(env, b"doomed")
        dropped = await env.evm.block("latest")
        await env.evm.rpc.call("anvil_reorg", [1, []])
        replaced = await env.evm.block(int(dropped["number"], 16))
        assert replaced["hash"] != dropped["hash"]
        await env.driver.finalize()
        facts, cursor = await read_all(adapter, cursor)
        assert facts == []  # the replacement block does not hold the ping
        tx = await ping(env, b"kept")
        await env.driver.finalize()
        facts, _ = await read_all(adapter, cursor)
        assert [f.tx_hash for f in facts] == [tx]
        for fact in facts:
            canonical = await env.evm.block(fact.height)
            assert fact.block_hash == canonical["hash"]
            check_evidence(fact, canonical["hash"])

    run(body)


def test_gateway_without_code_or_of_another_chain_is_a_configuration_error() -> None:
    """At first use, the gateway must have code and chainName() must be the configured chain:
    a name mismatch used to skip every MessageSent while the cursor moved on; now facts, status
    and submissions raise ConfigurationError naming both names."""

    async def body(env: EvmChainEnv) -> None:
        cursor = env.adapter.initial_cursor(await env.evm.head() + 1)
        await ping(env)
        await env.driver.finalize()
        renamed = env.adapter_with(chain="other-chain")
        empty = env.adapter_with(gateway=bytes.fromhex(env.evm.address(5)[2:]))
        try:
            for call in (renamed.facts(cursor), renamed.status(), renamed.requeue(1)):
                with pytest.raises(ConfigurationError) as caught:
                    await call
                assert "'other-chain'" in str(caught.value)
                assert f"'{CHAIN}'" in str(caught.value)
                assert caught.value.endpoint == env.anvil.url
            with pytest.raises(ConfigurationError, match="has no code"):
                await empty.facts(cursor)
        finally:
            await renamed.close()
            await empty.close()
        facts, _ = await read_all(env.adapter, cursor)
        assert [f.kind for f in facts] == [FactKind.MESSAGE_SENT]

    run(body)


# GASPRICE ISZERO PUSH1 10 JUMPI; loop: JUMPDEST PUSH1 5 JUMP; STOP; 10: JUMPDEST STOP
_GAS_PRICE_SNIFFER = "3a15600a575b60055600" + "5b00"
"""A receiver that returns at once when tx.gasprice == 0 (what eth_estimateGas without fee
fields shows it) and otherwise burns every gas it is given."""


def _creation_code(runtime: str) -> str:
    size = len(runtime) // 2
    # PUSH1 size PUSH1 12 PUSH1 0 CODECOPY PUSH1 size PUSH1 0 RETURN, then the runtime code
    return f"60{size:02x}600c60003960{size:02x}6000f3" + runtime


def test_receiver_that_behaves_under_estimation_cannot_starve_the_batch() -> None:
    """A batch of an honest message (PingPong) and one to a receiver that is cheap only when
    tx.gasprice == 0: the batch goes through, the hostile one is FAILED with its full allowance
    spent, the honest one SUCCESS (before: the estimate left too little gas and the gateway's
    gas rule reverted the whole batch with InsufficientGas)."""

    async def body(env: EvmChainEnv) -> None:
        receipt = await env.evm.send(
            {"from": env.evm.address(0), "data": "0x" + _creation_code(_GAS_PRICE_SNIFFER)}
        )
        assert receipt["status"] == "0x1"
        sniffer = bytes.fromhex(receipt["contractAddress"][2:])
        adapter = env.adapter
        cursor = adapter.initial_cursor(await env.evm.head() + 1)
        await ping(env, b"honest")
        timeout = await env.driver.timestamp() + 3600
        hostile_id, _ = await adapter.send_message(CHAIN, sniffer, b"hostile", timeout)
        await env.driver.finalize()
        facts, _ = await read_all(adapter, cursor)
        batch = [(f.id, f.message) for f in facts if f.message is not None]
        assert len(batch) == 2
        batch.sort(key=lambda item: item[0] != hostile_id)  # the hostile one burns gas first
        honest_id = batch[1][0]
        delivered = await adapter.deliver(batch)
        assert delivered.gas_used is not None
        assert delivered.gas_used > 300_000  # the hostile receiver burnt its allowance
        assert await adapter.delivery_status(hostile_id) is DeliveryStatus.FAILED
        assert await adapter.delivery_status(honest_id) is DeliveryStatus.SUCCESS

    run(body)


def test_reorg_deeper_than_confirmations_between_pages_is_an_error() -> None:
    """A page is read up to the final head; anvil_reorg then replaces more blocks than the
    confirmation depth, including the last one the page covered. The next page must not go on
    as if nothing happened: UnexpectedResponse naming the endpoint and the height."""

    async def body(env: EvmChainEnv) -> None:
        adapter = env.adapter
        cursor = adapter.initial_cursor(await env.evm.head() + 1)
        await ping(env, b"reported")
        await env.driver.finalize()
        facts, cursor = await read_all(adapter, cursor)
        assert len(facts) == 1
        covered = json.loads(cursor)["next"] - 1
        depth = await env.evm.head() - covered + 2  # deeper than the covered block
        assert depth > env.settings.confirmations
        await env.evm.rpc.call("anvil_reorg", [depth, []])
        await env.evm.mine(3)
        with pytest.raises(UnexpectedResponse, match="reorganised below the finality") as caught:
            await adapter.facts(cursor)
        assert f"height {covered}" in str(caught.value)
        assert caught.value.endpoint == env.anvil.url

    run(body)


def test_settings_refuse_zero_confirmations() -> None:
    """confirmations=0 would report facts of the head block itself: refused."""
    with pytest.raises(ValueError, match="confirmations must be at least 1"):
        EvmSettings(
            chain=CHAIN,
            chain_id=1,
            endpoints=("http://127.0.0.1:1",),
            gateway=bytes(20),
            relayer_key=None,
            sender_key=None,
            confirmations=0,
        )
