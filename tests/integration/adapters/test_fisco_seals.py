"""FiscoAdapter and seals that go wrong: an endpoint that alters or hides a seal, a seal that
really is not exactly seal() (unusable_seal, then requeue), bodies the bounded index no longer
holds, endpoints that omit a body, and pages that shrink instead of holding too much."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from adapters.base import FactKind, UnexpectedResponse
from adapters.fisco.adapter import FiscoAdapter
from tests.integration.adapters.env import ChainEnv, read_all
from tests.integration.adapters.env_fisco import (
    CHAIN,
    RELAYER,
    SENT_TOPIC,
    adapter_with,
    driver_of,
    fisco_env,
    head,
)
from tests.integration.adapters.fisco_proxy import tampering_proxy
from verifier.evidence import verify_bundle
from verifier.hashing import keccak256
from verifier.messages import seal_call_data

pytestmark = pytest.mark.integration
FAR = 2**40


@pytest.fixture(name="env", scope="module")
async def _env() -> AsyncIterator[ChainEnv]:
    """One devnode with the gateway for the module."""
    async with fisco_env(seed="adapter-seals") as env:
        yield env


async def send(env: ChainEnv, payload: bytes) -> bytes:
    sent_id, _ = await cast(FiscoAdapter, env.adapter).send_message(
        CHAIN, env.ping_pong, payload, FAR
    )
    return sent_id


async def test_altered_seal_transaction_fails_over_to_the_honest_endpoint(env: ChainEnv) -> None:
    """An endpoint that alters a real seal's transaction (its abi field) no longer makes the
    seal vanish: the page fails there, naming it, and the next endpoint yields the facts."""
    driver, adapter = driver_of(env), cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    sent_id = await send(env, b"altered")
    await adapter.seal(force=True)

    def alter(method: str, params: list[Any], result: Any) -> Any:
        if method == "getTransaction" and isinstance(result, dict):
            result["abi"] = "[]"
        return result

    async with tampering_proxy(driver.node.url, alter) as url:
        lying = adapter_with(env, url)
        both = adapter_with(env, url, driver.node.url)
        try:
            with pytest.raises(UnexpectedResponse) as caught:
                await read_all(lying, cursor)
            assert caught.value.endpoint == url
            assert "abi is not empty" in caught.value.reason
            facts, _ = await read_all(both, cursor)
        finally:
            await lying.close()
            await both.close()
    assert [f.id for f in facts] == [sent_id]
    assert facts[0].endpoint == driver.node.url


async def test_unusable_seal_is_reported_and_requeued(env: ChainEnv) -> None:
    """A relayer's seal() with a nonce that is not decimal digits (another SDK) consumes the
    entries into a seal no relay accepts: every endpoint agrees, so it is an unusable_seal fact
    with its number and reason; requeue(n) and a seal bring the entries back as facts."""
    driver, adapter = driver_of(env), cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    sent_id = await send(env, b"odd seal")
    receipt = await driver.send_raw(
        adapter.settings.gateway_hex,
        seal_call_data(keccak256),
        account=RELAYER,
        nonce=f"odd-nonce-{random.randrange(10**9)}",
    )
    assert receipt["status"] == 0, receipt
    async with tampering_proxy(driver.node.url, lambda m, p, r: r) as url:
        for pool in ((driver.node.url,), (url, driver.node.url)):
            observer = adapter_with(env, *pool)
            try:
                facts, after = await read_all(observer, cursor)
            finally:
                await observer.close()
            (unusable,) = facts
            assert unusable.kind is FactKind.UNUSABLE_SEAL
            assert unusable.id == b""
            assert unusable.evidence is None
            assert unusable.reason == "nonce is not 1-20 decimal digits"
            assert unusable.tx_hash == receipt["transactionHash"]
    assert unusable.seal_number is not None
    await adapter.requeue(unusable.seal_number)
    await adapter.seal(force=True)
    facts, _ = await read_all(adapter, after)
    (again,) = facts
    assert again.kind is FactKind.MESSAGE_SENT
    assert again.id == sent_id
    assert again.evidence is not None
    assert again.evidence.seal_number == unusable.seal_number + 1
    verify_bundle(again.evidence.bundle)


async def test_hidden_seal_is_a_gap(env: ChainEnv) -> None:
    """An endpoint that leaves a Sealed log out of getLogs is caught by the seal numbers the
    cursor carries: UnexpectedResponse naming it, and the honest endpoint has every seal."""
    driver, adapter = driver_of(env), cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    await send(env, b"known")
    await adapter.seal(force=True)
    _, cursor = await read_all(adapter, cursor)  # the cursor now knows the last seal
    hidden = await send(env, b"hidden")
    hidden_seal = await adapter.seal(force=True)
    assert hidden_seal is not None
    after = await send(env, b"after")
    await adapter.seal(force=True)

    def hide(method: str, params: list[Any], result: Any) -> Any:
        if method == "getLogs" and isinstance(result, list):
            return [e for e in result if e["transactionHash"] != hidden_seal.tx_hash]
        return result

    async with tampering_proxy(driver.node.url, hide) as url:
        lying = adapter_with(env, url)
        both = adapter_with(env, url, driver.node.url)
        try:
            with pytest.raises(UnexpectedResponse) as caught:
                await read_all(lying, cursor)
            assert caught.value.endpoint == url
            assert "hides" in caught.value.reason
            facts, _ = await read_all(both, cursor)
        finally:
            await lying.close()
            await both.close()
    assert [f.id for f in facts] == [hidden, after]


async def test_bodies_evicted_from_a_small_index_are_looked_up(env: ChainEnv) -> None:
    """More bodies than the index holds, in one page with their seal: the page is read (the
    evicted ones looked up, the seal's own never evicted under it), not failed for good."""
    driver, adapter = driver_of(env), cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    ids = [await send(env, b"body %d" % i) for i in range(6)]
    await adapter.seal(force=True)
    small = adapter_with(env, driver.node.url, body_cache_size=2)
    try:
        facts, _ = await read_all(small, cursor)
    finally:
        await small.close()
    assert sorted(f.id for f in facts) == sorted(ids)


async def test_page_shrinks_instead_of_holding_too_much(env: ChainEnv) -> None:
    """Past page_bytes a page ends after the block it is reading: several seals in separate
    blocks take several pages, each with its facts, none lost or repeated."""
    driver, adapter = driver_of(env), cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    ids = []
    for i in range(3):
        ids.append(await send(env, b"x" * 3000 + bytes([i])))
        await adapter.seal(force=True)
    small = adapter_with(env, driver.node.url, page_bytes=1)
    pages = []
    try:
        while True:
            page = await small.facts(cursor)
            if page.cursor == cursor:
                break
            pages.append(page)
            cursor = page.cursor
    finally:
        await small.close()
    assert [f.id for p in pages for f in p.facts] == ids
    assert sum(1 for p in pages if p.facts) == 3


async def test_omitted_body_costs_a_bounded_look_back(env: ChainEnv) -> None:
    """An endpoint that omits a sealed message's body is given up after body_lookback_blocks
    (a few getLogs calls, not one per block_range down to block 0); the next endpoint has it."""
    driver, adapter = driver_of(env), cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    sent_id = await send(env, b"omitted")
    await adapter.seal(force=True)
    assert await head(env) > 20  # so that scanning to block 0 would cost more than the bound
    lookups: list[Any] = []

    def omit(method: str, params: list[Any], result: Any) -> Any:
        if method == "getLogs":
            if params[1]["topics"]:
                lookups.append(params[1])
            return [e for e in result if e["topics"][0] != SENT_TOPIC]
        return result

    async with tampering_proxy(driver.node.url, omit) as url:
        bounded = {"block_range": 2, "body_lookback_blocks": 10}
        lying = adapter_with(env, url, **bounded)
        both = adapter_with(env, url, driver.node.url, **bounded)
        try:
            with pytest.raises(UnexpectedResponse) as caught:
                await read_all(lying, cursor)
            assert caught.value.endpoint == url
            assert len(lookups) <= 6
            facts, _ = await read_all(both, cursor)
        finally:
            await lying.close()
            await both.close()
    assert [f.id for f in facts] == [sent_id]
