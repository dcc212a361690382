"""What an EVM adapter needs to know about its chain; the configuration module builds this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

FINALITY_TAGS: Final = frozenset({"safe", "finalized"})


@dataclass(frozen=True)
class EvmSettings:
    """One Ethereum-compatible chain, its gateway contract, endpoints and accounts.

    Keys are raw 32-byte secp256k1 private keys and never appear in ``repr``.
    """

    chain: str
    """The chain's name in messages (``verifier.messages.CHAIN_NAME``)."""
    chain_id: int
    """EIP-155 chain id; every endpoint's ``eth_chainId`` must equal it."""
    endpoints: tuple[str, ...]
    """JSON-RPC URLs, in order of preference; the adapter fails over along them."""
    gateway: bytes
    """The CrossChainGateway contract (20 bytes): the only address whose logs are facts."""
    relayer_key: bytes | None = field(repr=False)
    """Signs deliverMessages, acknowledgeResults and requeue; None for a read-only adapter."""
    sender_key: bytes | None = field(repr=False)
    """Signs sendMessage: a separate account (relay-protocol requirement 20)."""
    confirmations: int = 2
    """A block is final once this many blocks follow it (ignored when finality_tag is set);
    at least 1. A reorganisation deeper than this is detected (the cursor keeps the last
    covered block's hash) and stops observation: operator action is needed."""
    finality_tag: str | None = None
    """``"safe"`` or ``"finalized"``: final means at or below that tag's block, never latest."""
    call_timeout: float = 10.0
    """Deadline of one JSON-RPC call, in seconds."""
    log_range: int = 1000
    """Blocks per ``eth_getLogs`` request."""
    gas_margin: float = 1.2
    """Gas limit = estimate × margin."""
    receipt_timeout: float = 60.0
    """How long to wait for a receipt; the transaction is re-priced after half of it."""

    def __post_init__(self) -> None:
        problems = []
        if not self.endpoints:
            problems.append("at least one endpoint is needed")
        if len(self.gateway) != 20:
            problems.append("gateway must be a 20-byte address")
        for name in ("relayer_key", "sender_key"):
            key = getattr(self, name)
            if key is not None and len(key) != 32:
                problems.append(f"{name} must be 32 bytes")
        if self.confirmations < 1:
            problems.append("confirmations must be at least 1 (0 reports facts of the head block)")
        if self.finality_tag is not None and self.finality_tag not in FINALITY_TAGS:
            problems.append("finality_tag must be 'safe' or 'finalized'")
        if self.call_timeout <= 0 or self.receipt_timeout <= 0:
            problems.append("timeouts must be positive")
        if self.log_range < 1:
            problems.append("log_range must be at least 1")
        if self.gas_margin < 1:
            problems.append("gas_margin must be at least 1")
        if problems:
            raise ValueError(f"EVM settings for {self.chain!r}: " + "; ".join(problems))
