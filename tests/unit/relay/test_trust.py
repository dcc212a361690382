"""The trust store's k-of-n agreement, finality and caching, against fake read endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from adapters.base import ChainUnavailable
from adapters.fisco.evidence import trust_for
from adapters.fisco.settings import FiscoEndpoint, FiscoSettings
from relay.config import ConfigError, EvmChainConfig, FiscoChainConfig, Sealer
from relay.trust import (
    BlockReader,
    ConfiguredTrustStore,
    EvidenceRejected,
    EvmTrustConfig,
    FiscoTrustConfig,
    NotYetTrusted,
    trust_configs,
)
from verifier.hashing import CryptoSuite, keccak256, sm3

CHAIN = "evm-a"
CHAIN_ID = 31337
GATEWAY = bytes.fromhex("11" * 20)
GOOD = "0x" + "aa" * 32
BAD = "0x" + "bb" * 32


class FakeReader:
    """An endpoint with a head, a finalized block and a hash per height; records every call."""

    def __init__(
        self,
        name: str,
        *,
        head: int = 100,
        finalized: int | None = None,
        hashes: dict[int, str] | None = None,
        chain_id: int = CHAIN_ID,
        down: bool = False,
    ) -> None:
        self.name = name
        self.head = head
        self.finalized = finalized
        self.hashes = hashes if hashes is not None else {}
        self.chain_id = chain_id
        self.down = down
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        self.calls.append((method, tuple(params)))
        await asyncio.sleep(0)
        if self.down:
            raise ChainUnavailable(f"{method}: ConnectionRefused", chain=CHAIN, endpoint=self.name)
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_blockNumber":
            return hex(self.head)
        assert method == "eth_getBlockByNumber", method
        tag = params[0]
        if tag in ("safe", "finalized"):
            return None if self.finalized is None else {"number": hex(self.finalized)}
        assert tag != "latest", "the trust store must never ask for latest"
        number = int(tag, 16)
        if number > self.head:
            return None
        return {"number": tag, "hash": self.hashes.get(number, GOOD)}

    async def close(self) -> None:
        pass


def config(n: int, k: int | None = None, **changes: Any) -> EvmTrustConfig:
    values: dict[str, Any] = {
        "chain": CHAIN,
        "gateway": GATEWAY,
        "chain_id": CHAIN_ID,
        "endpoints": tuple(f"http://127.0.0.1:{9000 + i}/key{i}" for i in range(n)),
        "quorum": k if k is not None else n // 2 + 1,
        "confirmations": 2,
        "finality_tag": None,
        "height_margin": 10,
    }
    values.update(changes)
    return EvmTrustConfig(**values)


def store(cfg: EvmTrustConfig, readers: Sequence[BlockReader], **kw: Any) -> ConfiguredTrustStore:
    return ConfiguredTrustStore({cfg.chain: cfg}, readers={cfg.chain: readers}, **kw)


async def test_k_agreeing_endpoints_give_the_hash_and_the_minimum_finality() -> None:
    """Three endpoints agree: the root is their hash, with the least final head among them."""
    readers = [FakeReader("a", head=100), FakeReader("b", head=90), FakeReader("c", head=95)]
    root = await store(config(3), readers).root_for(CHAIN, height=50, block_hash=GOOD)
    assert root.trust == {"block_hash": GOOD}
    assert root.summary["agreed"] == ["a", "b", "c"]
    assert root.summary["final_head"] == 88
    assert root.summary["dissent"] == {}
    assert (root.summary["quorum"], root.summary["of"]) == (2, 3)


async def test_one_lying_endpoint_of_three_is_outvoted_and_named() -> None:
    """k = 2 of 3: the majority's hash wins and the liar shows up as dissent."""
    readers = [FakeReader("a"), FakeReader("liar", hashes={50: BAD}), FakeReader("c")]
    root = await store(config(3), readers).root_for(CHAIN, height=50, block_hash=BAD)
    assert root.trust["block_hash"] == GOOD
    assert "liar" in root.summary["dissent"]
    assert BAD in root.summary["dissent"]["liar"]


async def test_disagreeing_endpoints_are_not_yet_trusted() -> None:
    """k = 2 of 2 and two hashes: retryable, both endpoints named with what they said."""
    readers = [FakeReader("a"), FakeReader("b", hashes={50: BAD})]
    with pytest.raises(NotYetTrusted) as caught:
        await store(config(2), readers).root_for(CHAIN, height=50, block_hash=GOOD)
    assert "disagree" in caught.value.reason
    assert GOOD in caught.value.endpoints["a"]
    assert BAD in caught.value.endpoints["b"]
    assert caught.value.retryable


async def test_three_different_answers_of_three_are_not_yet_trusted() -> None:
    readers = [
        FakeReader("a"),
        FakeReader("b", hashes={50: BAD}),
        FakeReader("c", hashes={50: "0x" + "cc" * 32}),
    ]
    with pytest.raises(NotYetTrusted, match="disagree"):
        await store(config(3), readers).root_for(CHAIN, height=50, block_hash=GOOD)


async def test_a_height_final_on_fewer_than_k_endpoints_is_not_yet_trusted() -> None:
    """One endpoint is behind: the block is final on 1 of the 2 required."""
    readers = [FakeReader("a", head=100), FakeReader("b", head=51), FakeReader("c", head=49)]
    with pytest.raises(NotYetTrusted, match="not final") as caught:
        await store(config(3), readers).root_for(CHAIN, height=50, block_hash=GOOD)
    assert "final head 49" in caught.value.endpoints["b"]
    assert not any(m == "eth_getBlockByNumber" for m, _ in readers[2].calls)


async def test_a_height_beyond_the_final_head_plus_the_margin_is_refused() -> None:
    """Every endpoint's final head + margin is below the height: a made-up header."""
    readers = [FakeReader("a", head=100), FakeReader("b", head=100)]
    with pytest.raises(EvidenceRejected) as caught:
        await store(config(2), readers).root_for(CHAIN, height=109, block_hash=GOOD)
    assert caught.value.check == "height"
    with pytest.raises(NotYetTrusted):  # within the margin: wait for it
        await store(config(2), readers).root_for(CHAIN, height=108, block_hash=GOOD)


async def test_one_endpoint_cannot_make_a_height_refused() -> None:
    """Only one endpoint answers (k = 2): too little to refuse, so it is retryable."""
    readers = [FakeReader("a", head=100), FakeReader("b", down=True)]
    with pytest.raises(NotYetTrusted, match="fewer than 2") as caught:
        await store(config(2), readers).root_for(CHAIN, height=5000, block_hash=GOOD)
    assert "ChainUnavailable" in caught.value.endpoints["b"]


async def test_an_endpoint_of_another_chain_does_not_count() -> None:
    """eth_chainId differs from the configuration: that endpoint is left out, and named."""
    readers = [FakeReader("a"), FakeReader("other", chain_id=1)]
    with pytest.raises(NotYetTrusted) as caught:
        await store(config(2), readers).root_for(CHAIN, height=50, block_hash=GOOD)
    assert "eth_chainId is 1" in caught.value.endpoints["other"]
    assert not any(m == "eth_getBlockByNumber" for m, _ in readers[1].calls)


async def test_chain_id_is_asked_once_per_endpoint() -> None:
    readers = [FakeReader("a"), FakeReader("b")]
    s = store(config(2), readers)
    for height in (10, 11, 12):
        await s.root_for(CHAIN, height=height, block_hash=GOOD)
    assert [m for m, _ in readers[0].calls].count("eth_chainId") == 1


async def test_unreachable_endpoints_are_not_yet_trusted() -> None:
    readers = [FakeReader("a", down=True), FakeReader("b", down=True), FakeReader("c")]
    with pytest.raises(NotYetTrusted) as caught:
        await store(config(3), readers).root_for(CHAIN, height=50, block_hash=GOOD)
    assert set(caught.value.endpoints) == {"a", "b", "c"}


async def test_finality_tag_is_used_and_never_replaced_by_latest() -> None:
    """With ``finalized`` the tag's block bounds finality; a chain without it trusts nothing."""
    cfg = config(1, finality_tag="finalized", confirmations=None)
    final = FakeReader("a", head=100, finalized=40)
    root = await store(cfg, [final]).root_for(CHAIN, height=40, block_hash=GOOD)
    assert root.summary["final_head"] == 40
    assert root.summary["finality"] == "finalized"
    with pytest.raises(NotYetTrusted, match="not final"):
        await store(cfg, [final]).root_for(CHAIN, height=41, block_hash=GOOD)
    no_tag = FakeReader("a", head=100, finalized=None)
    with pytest.raises(NotYetTrusted) as caught:
        await store(cfg, [no_tag]).root_for(CHAIN, height=10, block_hash=GOOD)
    assert "never replaced by 'latest'" in caught.value.endpoints["a"]
    assert all(params[:1] != ("latest",) for _, params in final.calls + no_tag.calls)


async def test_facts_of_one_block_share_one_check() -> None:
    """Concurrent and repeated requests for one height cost one round of endpoint calls."""
    readers = [FakeReader("a"), FakeReader("b"), FakeReader("c")]
    s = store(config(3), readers)
    roots = await asyncio.gather(
        *(s.root_for(CHAIN, height=50, block_hash=GOOD) for _ in range(10))
    )
    await s.root_for(CHAIN, height=50, block_hash=GOOD)
    assert all(r is roots[0] for r in roots)
    asked = [p for m, p in readers[0].calls if m == "eth_getBlockByNumber"]
    assert asked == [(hex(50), False)]
    assert s._locks == {}


async def test_the_cache_is_bounded_and_failures_are_not_cached() -> None:
    readers = [FakeReader("a", head=60)]
    s = store(config(1), readers, cache_size=2)
    for height in (10, 11, 12):
        await s.root_for(CHAIN, height=height, block_hash=GOOD)
    await s.root_for(CHAIN, height=10, block_hash=GOOD)  # evicted: asked again
    asked = [p[0] for m, p in readers[0].calls if m == "eth_getBlockByNumber"]
    assert asked == [hex(10), hex(11), hex(12), hex(10)]
    with pytest.raises(NotYetTrusted):
        await s.root_for(CHAIN, height=59, block_hash=GOOD)
    readers[0].head = 70
    root = await s.root_for(CHAIN, height=59, block_hash=GOOD)
    assert root.trust["block_hash"] == GOOD


async def test_an_unknown_chain_is_refused() -> None:
    s = store(config(1), [FakeReader("a")])
    with pytest.raises(EvidenceRejected) as caught:
        await s.root_for("other-chain", height=1, block_hash=GOOD)
    assert caught.value.check == "chain"


def test_quorum_must_be_a_strict_majority() -> None:
    with pytest.raises(ValueError, match="strict majority"):
        config(4, 2)
    with pytest.raises(ValueError, match="strict majority"):
        config(2, 3)
    with pytest.raises(ValueError, match="finality must be stated"):
        config(1, confirmations=None)
    assert config(4, 3).quorum == 3


def _evm_chain_config(endpoints: int, trust_quorum: int | None) -> EvmChainConfig:
    return EvmChainConfig(
        name=CHAIN,
        gateway=GATEWAY,
        relayer_key=None,
        served=False,
        endpoints=tuple(f"http://127.0.0.1:{9000 + i}" for i in range(endpoints)),
        chain_id=CHAIN_ID,
        confirmations=3,
        trust_quorum=trust_quorum,
    )


def test_evm_trust_from_configuration_defaults_to_a_strict_majority() -> None:
    assert EvmTrustConfig.from_chain_config(_evm_chain_config(4, None)).quorum == 3
    assert EvmTrustConfig.from_chain_config(_evm_chain_config(5, 5)).quorum == 5
    cfg = EvmTrustConfig.from_chain_config(_evm_chain_config(1, None))
    assert (cfg.quorum, cfg.confirmations, cfg.finality_tag) == (1, 3, None)


def test_fisco_root_equals_the_adapters_pinned_trust() -> None:
    """The relay's FISCO root is the sealer set and the pins the adapter's bundles carry."""
    node_ids = [("AB" * 64, 1), ("0x" + "cd" * 64, 2)]
    chain_cfg = FiscoChainConfig(
        name="fisco-a",
        gateway=GATEWAY,
        relayer_key=None,
        served=False,
        endpoints=(),
        sealers=tuple(Sealer(node_id=n, weight=w) for n, w in node_ids),
        chain_id="chain7",
        group_id="group3",
    )
    cfg = FiscoTrustConfig.from_chain_config(chain_cfg)
    settings = FiscoSettings(
        chain="fisco-a",
        endpoints=(FiscoEndpoint("http://127.0.0.1:1"),),
        chain_id="chain7",
        group_id="group3",
        gateway=GATEWAY,
        sealers=tuple(node_ids),
    )
    root = asyncio.run(
        ConfiguredTrustStore({"fisco-a": cfg}).root_for("fisco-a", height=3, block_hash="0x")
    )
    assert root.trust == trust_for(settings, keccak256)
    assert root.summary["total_weight"] == 3
    assert trust_configs({"fisco-a": chain_cfg}) == {"fisco-a": cfg}


def test_fisco_sm_chain_pins_the_sm3_selector() -> None:
    cfg = FiscoTrustConfig(
        chain="fisco-sm",
        crypto=CryptoSuite.SM3_SM2,
        gateway=GATEWAY,
        chain_id="chain0",
        group_id="group0",
        sealers=(("ab" * 64, 1),),
    )
    root = asyncio.run(
        ConfiguredTrustStore({"fisco-sm": cfg}).root_for("fisco-sm", height=1, block_hash="0x")
    )
    assert root.trust["call"]["input"] == "0x" + sm3(b"seal()")[:4].hex()


def test_a_chain_without_a_gateway_has_no_trust_root() -> None:
    """Requirement 1: no pinned gateway, no trust root (a configuration error with its path)."""
    cfg = dataclasses.replace(_evm_chain_config(1, None), gateway=None)
    with pytest.raises(ConfigError) as caught:
        EvmTrustConfig.from_chain_config(cfg)
    assert caught.value.problems[0].path == f"chains.{CHAIN}.gateway"
