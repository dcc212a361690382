"""Devnode: refetch finds a fact by id when the bundle the failing endpoint served names the
wrong seal transaction (review 2, finding 3); the views at the final block agree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import pytest

from adapters.base import Evidence, FactKind, UnexpectedResponse
from adapters.fisco.adapter import FiscoAdapter
from tests.integration.adapters.env import ChainEnv
from tests.integration.adapters.env_fisco import CHAIN, adapter_with, driver_of, fisco_env, head
from verifier.evidence import verify_bundle

pytestmark = pytest.mark.integration
FAR = 2**40


@pytest.fixture(name="env", scope="module")
async def _env() -> AsyncIterator[ChainEnv]:
    async with fisco_env(seed="adapter-by-id") as env:
        yield env


async def test_refetch_finds_the_fact_by_id_despite_a_wrong_seal_transaction(
    env: ChainEnv,
) -> None:
    adapter = cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    mid, _ = await adapter.send_message(CHAIN, env.ping_pong, b"by-id", FAR)
    await adapter.seal()
    (fact,) = [f for f in (await adapter.facts(cursor)).facts if f.kind is FactKind.MESSAGE_SENT]
    assert fact.id == mid
    assert fact.evidence is not None
    bundle = dict(fact.evidence.bundle)
    bundle["transaction"] = {**bundle["transaction"], "hash": "0x" + "22" * 32}
    lie = replace(fact, evidence=Evidence(bundle, "liar"), tx_hash="0x" + "22" * 32)
    again = await adapter.refetch(lie, avoid=frozenset())
    assert again.id == mid
    assert again.message == fact.message
    assert again.evidence is not None
    verify_bundle(again.evidence.bundle)
    probe = replace(fact, evidence=None, height=0, tx_hash="")
    assert (await adapter.refetch(probe, avoid=frozenset())).id == mid
    with pytest.raises(UnexpectedResponse, match="no "):
        await adapter.refetch(replace(probe, id=b"\x33" * 32), avoid=frozenset())


async def test_final_views_agree_across_endpoints(env: ChainEnv) -> None:
    url = driver_of(env).node.url
    both = adapter_with(env, url, url + "/")
    try:
        assert await both.sent_state(b"\x44" * 32, final=True) == 0
        assert await both.delivery_status(b"\x44" * 32, final=True) is None
    finally:
        await both.close()
