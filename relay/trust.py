"""Trust roots: what this gateway itself trusts about each chain, never what a bundle says.

A bundle's own ``trust`` is chosen by whoever built it, so the relay replaces it with the root
returned here before verifying (relay-protocol requirements 1, 2, 14, 16):

- FISCO BCOS: the configured sealer set with weights, chainID, groupID, and the gateway's
  ``seal()`` call and ``Sealed`` event, which bind a log to the configured contract.
- Ethereum-compatible chains: the block hash at the fact's height as ``k`` of the gateway's
  own ``n`` read endpoints report it at the configured finality (``k > n/2``). Disagreement,
  a height not yet final, a wrong ``eth_chainId`` or unreachable endpoints raise
  :class:`NotYetTrusted` (retryable) naming each endpoint and what it said; never an acceptance.

:class:`TrustStore` is the one interface, so later light clients (sealer rotation followed from
signed headers, sync committees) replace :class:`ConfiguredTrustStore` without touching callers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

import structlog

from adapters.base import AdapterError, endpoint_names
from adapters.evm.rpc import EvmEndpoint
from relay.config import ConfigError, ConfigProblem, EvmChainConfig, FiscoChainConfig
from verifier.errors import GatewayError
from verifier.hashing import CryptoSuite, hasher_for
from verifier.messages import SEALED_EVENT, check_chain_name, seal_call_data
from verifier.types import Family

log = structlog.get_logger(__name__)

FINALITY_TAGS: Final = frozenset({"safe", "finalized"})
DEFAULT_CALL_TIMEOUT: Final = 10.0
DEFAULT_HEIGHT_MARGIN: Final = 128
"""Blocks past the final head within which a height is "not yet final" (retry); beyond it the
height is refused: no endpoint of ours has seen such a block, so a header there is made up."""
DEFAULT_CACHE_SIZE: Final = 4096


# ---------------------------------------------------------------------------------------------
# Verdicts. Defined here because the trust store raises them; relay.verify re-exports both.


class NotYetTrusted(GatewayError):
    """The trust root cannot vouch for this height yet: retry later, never accept meanwhile."""

    retryable: ClassVar[bool] = True

    def __init__(
        self, reason: str, *, chain: str, endpoints: Mapping[str, str] | None = None
    ) -> None:
        said = dict(endpoints or {})
        detail = "; ".join(f"{name}: {what}" for name, what in said.items())
        super().__init__(f"{chain}: not yet trusted: {reason}" + (f" ({detail})" if detail else ""))
        self.chain = chain
        self.reason = reason
        self.endpoints = said
        """Each endpoint asked, by its display name (no credentials), and what it said."""


class EvidenceRejected(GatewayError):
    """A verdict on this attempt's evidence (requirement 13): the same bytes fail again, but a
    later attempt with other evidence for the same id may hold."""

    retryable: ClassVar[bool] = False

    def __init__(self, reason: str, *, check: str) -> None:
        super().__init__(f"[{check}] {reason}")
        self.check = check
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# What the gateway trusts per chain, independent of the TOML layer.


@dataclass(frozen=True, slots=True)
class FiscoTrustConfig:
    family: ClassVar[Family] = Family.FISCO_BCOS_3

    chain: str
    crypto: CryptoSuite
    gateway: bytes
    chain_id: str
    group_id: str
    sealers: tuple[tuple[str, int], ...]
    """(node id as 128 lowercase hex digits, weight)."""

    def __post_init__(self) -> None:
        check_chain_name(self.chain)
        problems = []
        if len(self.gateway) != 20:
            problems.append("gateway must be a 20-byte address")
        if not self.chain_id or not self.group_id:
            problems.append("chain_id and group_id must not be empty")
        if not self.sealers:
            problems.append("the sealer set is empty")
        ids = [node_id for node_id, _ in self.sealers]
        if len(set(ids)) != len(ids):
            problems.append("sealer node ids repeat")
        for node_id, weight in self.sealers:
            if len(node_id) != 128 or node_id != node_id.lower() or not _is_hex(node_id):
                problems.append(f"sealer {node_id[:16]}... is not 128 lowercase hex digits")
            if weight < 1:
                problems.append(f"sealer {node_id[:16]}... has weight {weight}, not >= 1")
        if problems:
            raise ValueError(f"trust root of {self.chain!r}: " + "; ".join(problems))

    @classmethod
    def from_chain_config(cls, cfg: FiscoChainConfig) -> FiscoTrustConfig:
        return cls(
            chain=cfg.name,
            crypto=cfg.crypto,
            gateway=_gateway(cfg),
            chain_id=cfg.chain_id,
            group_id=cfg.group_id,
            sealers=tuple((s.node_id.lower().removeprefix("0x"), s.weight) for s in cfg.sealers),
        )


@dataclass(frozen=True, slots=True)
class EvmTrustConfig:
    family: ClassVar[Family] = Family.EVM
    crypto: ClassVar[CryptoSuite] = CryptoSuite.KECCAK256_SECP256K1

    chain: str
    gateway: bytes
    chain_id: int
    endpoints: tuple[str, ...]
    """The gateway's own read endpoints; URLs may carry API keys and are never printed."""
    quorum: int
    """k: how many endpoints must report the same hash, final, at a height (k > n/2)."""
    confirmations: int | None
    finality_tag: str | None
    """``"safe"`` or ``"finalized"``; when set it wins over ``confirmations``."""
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    height_margin: int = DEFAULT_HEIGHT_MARGIN

    def __post_init__(self) -> None:
        check_chain_name(self.chain)
        n, k = len(self.endpoints), self.quorum
        problems = []
        if len(self.gateway) != 20:
            problems.append("gateway must be a 20-byte address")
        if n == 0:
            problems.append("at least one endpoint is needed")
        elif not (0 < k <= n and 2 * k > n):
            problems.append(f"quorum {k} of {n} endpoints is not a strict majority (k > n/2)")
        if self.finality_tag is None and (self.confirmations is None or self.confirmations < 1):
            problems.append("finality must be stated: confirmations >= 1 or a finality tag")
        if self.finality_tag is not None and self.finality_tag not in FINALITY_TAGS:
            problems.append("finality_tag must be 'safe' or 'finalized'")
        if self.call_timeout <= 0 or self.height_margin < 0:
            problems.append("call_timeout must be > 0 and height_margin >= 0")
        if problems:
            raise ValueError(f"trust root of {self.chain!r}: " + "; ".join(problems))

    @classmethod
    def from_chain_config(
        cls, cfg: EvmChainConfig, *, height_margin: int = DEFAULT_HEIGHT_MARGIN
    ) -> EvmTrustConfig:
        """k is the section's ``trust_quorum``, else a strict majority of its endpoints."""
        k = getattr(cfg, "trust_quorum", None)
        return cls(
            chain=cfg.name,
            gateway=_gateway(cfg),
            chain_id=cfg.chain_id,
            endpoints=tuple(cfg.endpoints),
            quorum=k if k is not None else len(cfg.endpoints) // 2 + 1,
            confirmations=cfg.confirmations,
            finality_tag=cfg.finality,
            call_timeout=cfg.call_timeout or DEFAULT_CALL_TIMEOUT,
            height_margin=height_margin,
        )


TrustConfig = FiscoTrustConfig | EvmTrustConfig


def trust_configs(chains: Mapping[str, Any]) -> dict[str, TrustConfig]:
    """The trust roots of every configured chain (``GatewayConfig.chains``)."""
    out: dict[str, TrustConfig] = {}
    for name, cfg in chains.items():
        if isinstance(cfg, EvmChainConfig):
            out[name] = EvmTrustConfig.from_chain_config(cfg)
        elif isinstance(cfg, FiscoChainConfig):
            out[name] = FiscoTrustConfig.from_chain_config(cfg)
    return out


def _gateway(cfg: EvmChainConfig | FiscoChainConfig) -> bytes:
    if cfg.gateway is None:
        problem = ConfigProblem(
            f"chains.{cfg.name}.gateway",
            "not set: a chain's trust root pins its gateway contract (requirement 1)",
        )
        raise ConfigError([problem], source="configuration")
    return cfg.gateway


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The interface and the configured implementation.


@dataclass(frozen=True, slots=True)
class TrustRoot:
    chain: str
    family: Family
    trust: Mapping[str, Any]
    """The ``trust`` object to put into a bundle before verifying it (EVM: the caller adds the
    fact's ``event``)."""
    summary: Mapping[str, Any] = field(default_factory=dict)
    """For audit records: which sealer set, or which endpoints agreed on which hash."""


class BlockReader(Protocol):
    """One read endpoint of an EVM chain (``adapters.evm.rpc.EvmEndpoint``; fakes in tests)."""

    name: str
    """How it is named in errors and audit records: never its URL's credentials."""

    async def call(self, method: str, params: Sequence[Any]) -> Any: ...

    async def close(self) -> None: ...


class _BadAnswer(Exception):
    pass


class TrustStore(Protocol):
    async def root_for(self, chain: str, *, height: int, block_hash: str) -> TrustRoot:
        """The root for a fact at ``height`` in block ``block_hash`` (as the bundle's own
        header hashes to). Raises :class:`NotYetTrusted` or :class:`EvidenceRejected`."""
        ...


@dataclass(slots=True)
class _Answer:
    """What one endpoint said about a height."""

    final_head: int | None = None
    block_hash: str | None = None
    error: str | None = None

    def describe(self, height: int) -> str:
        if self.error is not None:
            return self.error
        if self.block_hash is None:
            return f"final head {self.final_head}, height {height} not final"
        return f"final head {self.final_head}, block {height} is {self.block_hash}"


class ConfiguredTrustStore:
    """Roots from configuration; EVM block hashes from k of the n configured endpoints.

    Agreed (chain, height) -> root pairs are kept in a bounded LRU and concurrent requests for
    one height share one round of endpoint calls, so the facts of one block cost one check.
    """

    def __init__(
        self,
        configs: Mapping[str, TrustConfig],
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        readers: Mapping[str, Sequence[BlockReader]] | None = None,
    ) -> None:
        """``readers`` replaces a chain's configured endpoints (tests, or shared clients)."""
        self.configs = dict(configs)
        self._chain_checked: set[tuple[str, str]] = set()
        self._cache: OrderedDict[tuple[str, int], TrustRoot] = OrderedDict()
        self._cache_size = cache_size
        self._locks: dict[tuple[str, int], tuple[asyncio.Lock, int]] = {}
        self._endpoints: dict[str, tuple[BlockReader, ...]] = {}
        self._fisco: dict[str, TrustRoot] = {}
        for name, cfg in self.configs.items():
            if isinstance(cfg, FiscoTrustConfig):
                self._fisco[name] = fisco_root(cfg)
                continue
            names = endpoint_names(cfg.endpoints)
            given = (readers or {}).get(name)
            self._endpoints[name] = (
                tuple(given)
                if given is not None
                else tuple(
                    EvmEndpoint(
                        url,
                        chain=name,
                        chain_id=cfg.chain_id,
                        call_timeout=cfg.call_timeout,
                        name=n,
                    )
                    for url, n in zip(cfg.endpoints, names, strict=True)
                )
            )
            if len(self._endpoints[name]) == 1:
                log.warning(
                    "trust_single_endpoint",
                    chain=name,
                    reason="k-of-n with n = 1: this chain's block hashes rest on one endpoint's "
                    "word; configure more endpoints run by different parties",
                )

    async def root_for(self, chain: str, *, height: int, block_hash: str) -> TrustRoot:
        cfg = self.configs.get(chain)
        if cfg is None:
            raise EvidenceRejected(
                f"no trust root is configured for chain {chain!r}", check="chain"
            )
        if isinstance(cfg, FiscoTrustConfig):
            return self._fisco[chain]
        del block_hash  # the endpoints' answer is the root; the verifier compares the bundle's
        return await self._evm_root(cfg, height)

    async def close(self) -> None:
        for endpoints in self._endpoints.values():
            for endpoint in endpoints:
                await endpoint.close()

    # -- EVM -----------------------------------------------------------------------------------

    async def _evm_root(self, cfg: EvmTrustConfig, height: int) -> TrustRoot:
        key = (cfg.chain, height)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
                    return cached
                root = await self._agree(cfg, height)
                self._cache[key] = root
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                return root
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _agree(self, cfg: EvmTrustConfig, height: int) -> TrustRoot:
        endpoints = self._endpoints[cfg.chain]
        answers = await asyncio.gather(*(self._ask(cfg, e, height) for e in endpoints))
        said = {e.name: a.describe(height) for e, a in zip(endpoints, answers, strict=True)}
        by_hash: dict[str, list[tuple[str, int]]] = {}
        for endpoint, answer in zip(endpoints, answers, strict=True):
            if answer.block_hash is not None and answer.final_head is not None:
                by_hash.setdefault(answer.block_hash, []).append((endpoint.name, answer.final_head))
        k, n = cfg.quorum, len(endpoints)
        agreed = [(h, names) for h, names in by_hash.items() if len(names) >= k]
        if agreed:
            [(block_hash, voters)] = agreed  # k > n/2: at most one hash reaches k
            return self._evm_trust_root(cfg, height, block_hash, voters, said)
        heads = [a.final_head for a in answers if a.final_head is not None]
        if len(heads) >= k and all(h + cfg.height_margin < height for h in heads):
            log.warning("trust_height_refused", chain=cfg.chain, height=height, endpoints=said)
            raise EvidenceRejected(
                f"height {height} is beyond every final head ({max(heads)}) plus the margin "
                f"of {cfg.height_margin} blocks: no endpoint of this gateway has such a block",
                check="height",
            )
        if len(by_hash) > 1:
            reason = f"the endpoints disagree on block {height}; {k} of {n} must agree"
        elif len(heads) < k:
            reason = f"fewer than {k} of {n} endpoints answered correctly for block {height}"
        else:
            reason = f"block {height} is not final on {k} of {n} endpoints"
        log.warning(
            "trust_not_agreed", chain=cfg.chain, height=height, reason=reason, endpoints=said
        )
        raise NotYetTrusted(reason, chain=cfg.chain, endpoints=said)

    def _evm_trust_root(
        self,
        cfg: EvmTrustConfig,
        height: int,
        block_hash: str,
        voters: list[tuple[str, int]],
        said: dict[str, str],
    ) -> TrustRoot:
        dissent = {name: what for name, what in said.items() if name not in dict(voters)}
        if dissent:
            log.warning(
                "trust_endpoints_dissent", chain=cfg.chain, height=height, endpoints=dissent
            )
        summary = {
            "family": Family.EVM.value,
            "source": "endpoints",
            # A decimal string: an EVM chain id may reach 2**63-1, beyond the integers an audit
            # record holds (2**53-1, what jq reads exactly).
            "chain_id": str(cfg.chain_id),
            "gateway": "0x" + cfg.gateway.hex(),
            "height": height,
            "block_hash": block_hash,
            "quorum": cfg.quorum,
            "of": len(self._endpoints[cfg.chain]),
            "agreed": [name for name, _ in voters],
            "final_head": min(head for _, head in voters),
            "finality": cfg.finality_tag or f"{cfg.confirmations} confirmations",
            "dissent": dissent,
        }
        return TrustRoot(cfg.chain, Family.EVM, {"block_hash": block_hash}, summary)

    async def _ask(self, cfg: EvmTrustConfig, endpoint: BlockReader, height: int) -> _Answer:
        """One endpoint's view; every failure becomes what it said, never an exception."""
        try:
            await self._check_chain_id(cfg, endpoint)
            final = await _final_head(cfg, endpoint)
            if final < height:
                return _Answer(final_head=final)
            block = await endpoint.call("eth_getBlockByNumber", [hex(height), False])
            if block is None:
                return _Answer(error=f"final head {final} but no block {height}")
            block = _json_object(block, f"block {height}")
            if _quantity(block.get("number"), "block number") != height:
                raise _BadAnswer(f"answered another block when asked for {height}")
            digest = block.get("hash")
            if not isinstance(digest, str) or len(digest) != 66 or not _is_hex(digest[2:]):
                raise _BadAnswer(f"block {height} has no 32-byte hash")
            return _Answer(final_head=final, block_hash=digest.lower())
        except AdapterError as exc:
            return _Answer(error=f"{type(exc).__name__}: {exc.reason}")
        except _BadAnswer as exc:
            return _Answer(error=str(exc))

    async def _check_chain_id(self, cfg: EvmTrustConfig, endpoint: BlockReader) -> None:
        """``eth_chainId`` once per endpoint (until it matches): another chain's endpoint
        would vouch for another chain's blocks."""
        key = (cfg.chain, endpoint.name)
        if key in self._chain_checked:
            return
        value = _quantity(await endpoint.call("eth_chainId", []), "eth_chainId")
        if value != cfg.chain_id:
            log.error(
                "trust_wrong_chain_id",
                chain=cfg.chain,
                endpoint=endpoint.name,
                chain_id=value,
                expected=cfg.chain_id,
            )
            raise _BadAnswer(f"eth_chainId is {value}, the configuration says {cfg.chain_id}")
        self._chain_checked.add(key)


async def _final_head(cfg: EvmTrustConfig, endpoint: BlockReader) -> int:
    """The endpoint's final head at the configured finality; never ``latest`` instead of a tag."""
    if cfg.finality_tag is None:
        assert cfg.confirmations is not None  # __post_init__
        head = _quantity(await endpoint.call("eth_blockNumber", []), "eth_blockNumber")
        return head - cfg.confirmations
    block = await endpoint.call("eth_getBlockByNumber", [cfg.finality_tag, False])
    if block is None:
        raise _BadAnswer(f"no {cfg.finality_tag!r} block (never replaced by 'latest')")
    block = _json_object(block, f"{cfg.finality_tag} block")
    return _quantity(block.get("number"), f"{cfg.finality_tag} number")


def _quantity(value: object, what: str) -> int:
    if isinstance(value, str) and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise _BadAnswer(f"{what}: expected a hex quantity, got {json.dumps(value)[:80]}")


def _json_object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _BadAnswer(f"{what}: expected an object, got {json.dumps(value)[:80]}")
    return value


# ---------------------------------------------------------------------------------------------
# FISCO BCOS


def fisco_root(cfg: FiscoTrustConfig) -> TrustRoot:
    """The configured sealer set and the pins that tie a ``Sealed`` log to the gateway."""
    hasher = hasher_for(cfg.crypto.hash_scheme)
    sealers = [{"node_id": node_id, "weight": weight} for node_id, weight in cfg.sealers]
    trust = {
        "sealers": sealers,
        "chainID": cfg.chain_id,
        "groupID": cfg.group_id,
        "call": {"to": "0x" + cfg.gateway.hex(), "input": "0x" + seal_call_data(hasher).hex()},
        "event": SEALED_EVENT,
    }
    canonical = json.dumps(sorted(cfg.sealers), separators=(",", ":")).encode()
    summary = {
        "family": Family.FISCO_BCOS_3.value,
        "source": "configuration",
        "chain_id": cfg.chain_id,
        "group_id": cfg.group_id,
        "gateway": "0x" + cfg.gateway.hex(),
        "sealer_set": hashlib.sha256(canonical).hexdigest(),
        "sealers": len(sealers),
        "total_weight": sum(w for _, w in cfg.sealers),
    }
    return TrustRoot(cfg.chain, Family.FISCO_BCOS_3, trust, summary)
