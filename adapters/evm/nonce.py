"""Nonces and EIP-1559 fees of one sending account.

The nonce is read from ``eth_getTransactionCount(account, "pending")`` when first needed and
after any error (a transaction that never reached the pool leaves a gap the next one fills:
hyperlane #5301 and hermes' sequence mismatches are this). A stuck transaction is replaced with
the same nonce and both fee caps raised by at least 12.5 %, more than the 10 % geth demands, so
the replacement is never "underpriced" (hyperlane #2924).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

REPLACEMENT_BUMP_EIGHTHS = 1
"""Each fee cap grows by at least one eighth (12.5 %) on replacement."""


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def initial_fees(base_fee: int, priority_fee: int) -> Fees:
    """EIP-1559 caps: twice the base fee (room for six full blocks) plus the tip."""
    return Fees(max_fee_per_gas=2 * base_fee + priority_fee, max_priority_fee_per_gas=priority_fee)


def _bump(value: int) -> int:
    return value + max(1, -(-value * REPLACEMENT_BUMP_EIGHTHS // 8))


def bumped_fees(previous: Fees, current: Fees | None = None) -> Fees:
    """Fees for a replacement: each cap ≥ 112.5 % of ``previous`` (rounded up, at least +1 wei),
    and no lower than ``current`` (what a fresh transaction would pay now)."""
    tip = _bump(previous.max_priority_fee_per_gas)
    cap = _bump(previous.max_fee_per_gas)
    if current is not None:
        tip = max(tip, current.max_priority_fee_per_gas)
        cap = max(cap, current.max_fee_per_gas)
    return Fees(max_fee_per_gas=max(cap, tip), max_priority_fee_per_gas=tip)


class NonceManager:
    """Hands out consecutive nonces for one account; ``resync()`` after any error."""

    def __init__(self, pending_count: Callable[[], Awaitable[int]]) -> None:
        self._pending_count = pending_count
        self._next: int | None = None
        self._lock = asyncio.Lock()

    async def reserve(self) -> int:
        async with self._lock:
            if self._next is None:
                self._next = await self._pending_count()
            nonce = self._next
            self._next += 1
            return nonce

    def resync(self) -> None:
        """Forget the local count: the next ``reserve`` reads the chain's pending count."""
        self._next = None
