"""Anvil: a fact found by id whatever locator the failing endpoint claimed (review 2,
finding 3), and the views read at the final block with every endpoint agreeing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from adapters.base import FactKind, UnexpectedResponse
from tests.integration.adapters.env_evm import CHAIN, EvmChainEnv, evm_env


def run(test: Callable[[EvmChainEnv], Awaitable[None]]) -> None:
    async def main() -> None:
        async with evm_env() as env:
            await test(env)

    asyncio.run(main())


async def _final_ping(env: EvmChainEnv) -> str:
    cursor = env.adapter.initial_cursor(await env.evm.head() + 1)
    timeout = await env.driver.timestamp() + 3600
    await env.driver.transact(
        env.ping_pong,
        "ping(string,address,bytes,uint64)",
        [CHAIN, env.ping_pong, b"p", timeout],
        account=0,
    )
    await env.driver.finalize()
    return cursor


def test_refetch_finds_the_fact_by_id_despite_a_wrong_locator() -> None:
    async def body(env: EvmChainEnv) -> None:
        cursor = await _final_ping(env)
        (fact,) = [
            f for f in (await env.adapter.facts(cursor)).facts if f.kind is FactKind.MESSAGE_SENT
        ]
        lie = replace(
            fact, block_hash="0x" + "11" * 32, tx_hash="0x" + "22" * 32, log_index=7, height=1
        )
        again = await env.adapter.refetch(lie, avoid=frozenset())
        assert (again.kind, again.id, again.message) == (fact.kind, fact.id, fact.message)
        assert (again.tx_hash, again.block_hash, again.height) == (
            fact.tx_hash,
            fact.block_hash,
            fact.height,
        )
        assert again.evidence is not None
        probe = replace(fact, height=0, tx_hash="", block_hash="", evidence=None)
        assert (await env.adapter.refetch(probe, avoid=frozenset())).tx_hash == fact.tx_hash
        with pytest.raises(UnexpectedResponse, match="no final"):
            await env.adapter.refetch(replace(fact, id=b"\x33" * 32), avoid=frozenset())

    run(body)


def test_final_views_agree_across_endpoints() -> None:
    async def body(env: EvmChainEnv) -> None:
        cursor = await _final_ping(env)
        sent = [
            f for f in (await env.adapter.facts(cursor)).facts if f.kind is FactKind.MESSAGE_SENT
        ]
        both = env.adapter_with(endpoints=(env.anvil.url, env.anvil.url + "/"))
        try:
            assert await both.sent_state(sent[0].id, final=True) in (1, 2)
            assert await both.sent_state(b"\x44" * 32, final=True) == 0
            assert await both.delivery_status(b"\x44" * 32, final=True) is None
        finally:
            await both.close()

    run(body)
