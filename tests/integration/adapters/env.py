"""What the adapter conformance suite needs from a chain: one environment type per family.

``env_evm.py`` (Anvil) and ``env_fisco.py`` (the devnode) each provide an async context manager
yielding a :class:`ChainEnv`: a running chain with the gateway contract deployed, the relayer
registered, the chain itself registered as a destination (so one chain can play both ends of a
route), the example contracts deployed, and an adapter configured for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adapters.base import ChainAdapter, Fact
from verifier.hashing import Hasher


class ChainDriver(Protocol):
    """Test-only access to the chain, outside the adapter (deploy, call, mine)."""

    async def deploy(self, name: str, args: Sequence[Any] = ()) -> bytes:
        """Deploy an artifact from contracts/artifacts.json; returns its address."""
        ...

    async def transact(
        self, to: bytes, signature: str, args: Sequence[Any] = (), *, account: int = 2
    ) -> tuple[str, bool]:
        """Send ``signature(args)`` (e.g. ``"ping(string,address,bytes,uint64)"``) from dev
        account ``account`` (0 is the owner, 1 the relayer, 2+ users); wait for the receipt;
        return (tx hash, success)."""
        ...

    async def call(self, to: bytes, signature: str, args: Sequence[Any], returns: str) -> Any:
        """``eth_call``-style read; ``returns`` is the ABI type tuple, e.g. ``"(uint64)"``."""
        ...

    async def finalize(self) -> None:
        """Make every block so far final (mine past the confirmation depth; no-op on PBFT)."""
        ...

    async def timestamp(self) -> int:
        """The latest block's time in seconds."""
        ...


@dataclass
class ChainEnv:
    chain: str
    gateway: bytes
    hasher: Hasher
    adapter: ChainAdapter
    new_adapter: Callable[[], ChainAdapter]
    """A fresh adapter with the same settings (a restart)."""
    driver: ChainDriver
    ping_pong: bytes
    """A PingPong example deployed and allowed to talk to itself on this chain."""
    trust: dict[str, Any]
    """The trust root a relay would use for this chain (bundle ``trust`` for the facts' logs)."""


async def read_all(
    adapter: ChainAdapter, cursor: str, *, max_blocks: int = 1000
) -> tuple[list[Fact], str]:
    """Every fact from ``cursor`` up to the final head, page by page, and the cursor after them."""
    facts: list[Fact] = []
    for _ in range(1000):
        page = await adapter.facts(cursor, max_blocks=max_blocks)
        facts.extend(page.facts)
        if page.cursor == cursor:
            return facts, cursor
        cursor = page.cursor
    raise AssertionError("the cursor never settled")
