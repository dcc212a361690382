"""A FISCO BCOS 3.x adapter's settings: endpoints (HTTP or mutual TLS), ids, gateway, trust.

Built by the configuration module; plain values only. The sealer set is the receiving side's
trust root, from configuration, never asked from a node. Keys never appear in ``repr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from adapters.base import ConfigurationError, display_url
from verifier.hashing import CryptoSuite
from verifier.messages import CHAIN_NAME

_NODE_ID: Final = re.compile(r"(?:0x)?[0-9a-fA-F]{128}")


@dataclass(frozen=True)
class FiscoEndpoint:
    """One node's JSON-RPC listener, e.g. ``https://10.0.0.1:20200``.

    Real nodes enable mutual TLS by default (``enable_ssl=true``): give the node's ``sdk/ca.crt``,
    ``sdk/sdk.crt`` and ``sdk/sdk.key``. The node's certificate is checked against ``ca_cert``;
    its name is not (FISCO certificates name the node, not its host).
    """

    url: str
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @property
    def tls(self) -> bool:
        return self.url.startswith("https://")


@dataclass(frozen=True, kw_only=True)
class FiscoSettings:
    chain: str
    """The configured chain name (``verifier.messages.CHAIN_NAME``)."""
    endpoints: tuple[FiscoEndpoint, ...]
    chain_id: str = "chain0"
    """The chain's own ``chainID`` (what transactions carry), not ``chain``."""
    group_id: str = "group0"
    gateway: bytes
    """The CrossChainGateway contract's 20-byte address."""
    sealers: tuple[tuple[str, int], ...]
    """The trusted sealer set: (node id as 128 hex, weight)."""
    crypto: CryptoSuite = CryptoSuite.KECCAK256_SECP256K1
    relayer_key: bytes | None = field(default=None, repr=False)
    """Signs deliver, acknowledge, seal and requeue; None: observe only."""
    sender_key: bytes | None = field(default=None, repr=False)
    """Signs ``sendMessage`` (never the relayer's account)."""
    call_timeout: float = 10.0
    """Deadline of one JSON-RPC call, seconds."""
    seal_batch: int = 50
    """Seal at once (even twice in a block) when this many entries are pending."""
    seal_interval: float = 1.0
    """Otherwise seal at most once per block, and at the latest this many seconds after the
    previous seal: chains that make blocks only for transactions would strand entries left
    behind by a full seal or sent in the seal's own block."""
    block_range: int = 500
    """Blocks per ``getLogs`` request."""
    receipt_timeout: float = 30.0
    """How long to wait for a submitted transaction's receipt, seconds."""
    body_lookback_blocks: int = 100_000
    """How far before a seal its entries' bodies are looked up (``getLogs`` by id, newest
    first); a body not found within it is the endpoint's fault (UnexpectedResponse), so an
    endpoint that omits one costs at most this / ``block_range`` calls before failing over.
    Requeue a seal well within it."""
    body_cache_size: int = 20_000
    """Bodies kept between seals (sent, not sealed yet); beyond it they are looked up."""
    page_bytes: int = 64 * 1024 * 1024
    """Roughly the bytes of facts one page holds (payloads up to 64 KiB, bundles): past it the
    page ends after the block being read, and the next page goes on from there."""

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ConfigurationError("; ".join(problems), chain=str(self.chain))

    def _problems(self) -> list[str]:
        out: list[str] = []
        if not isinstance(self.chain, str) or CHAIN_NAME.fullmatch(self.chain) is None:
            out.append(f"chain {self.chain!r} is not a chain name")
        if not self.endpoints:
            out.append("at least one endpoint is needed")
        for ep in self.endpoints:
            if not ep.url.startswith(("http://", "https://")):
                out.append(f"endpoint {display_url(ep.url)!r} is not http:// or https://")
            if (ep.client_cert is None) != (ep.client_key is None):
                out.append(
                    f"endpoint {display_url(ep.url)}: client_cert and client_key go together"
                )
        if not self.chain_id or not self.group_id:
            out.append("chain_id and group_id must not be empty")
        if not isinstance(self.gateway, bytes) or len(self.gateway) != 20:
            out.append("gateway must be a 20-byte address")
        if not self.sealers:
            out.append("the trusted sealer set is empty")
        ids = [node_id.lower().removeprefix("0x") for node_id, _ in self.sealers]
        if len(set(ids)) != len(ids):
            out.append("sealer node ids repeat")
        for node_id, weight in self.sealers:
            if _NODE_ID.fullmatch(node_id) is None:
                out.append(f"sealer {node_id[:16]}... is not a 128-hex node id")
            if not isinstance(weight, int) or weight < 1:
                out.append(f"sealer {node_id[:16]}... has weight {weight!r}, not >= 1")
        for name in ("call_timeout", "receipt_timeout", "seal_interval"):
            if not getattr(self, name) > 0:
                out.append(f"{name} must be > 0")
        for name in (
            "seal_batch",
            "block_range",
            "body_lookback_blocks",
            "body_cache_size",
            "page_bytes",
        ):
            if not getattr(self, name) >= 1:
                out.append(f"{name} must be >= 1")
        return out

    @property
    def gateway_hex(self) -> str:
        """``0x`` + 40 lowercase hex: the ``to`` of the gateway's transactions."""
        return "0x" + self.gateway.hex()
