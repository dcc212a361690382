"""Gas limits for the gateway's batch calls that no receiver can talk down.

``eth_estimateGas`` runs the batch once, and a receiver can behave differently there (it sees
``tx.gasprice == 0`` when the estimate has no fee fields, another ``block.number``...), so an
estimate × margin alone may leave too little gas for the real run: the gateway's gas rule
(``gasleft() >= allowance * 64 / 63 + CALL_RESERVE_GAS`` before each receiver or ack call,
docs/contracts.md) then reverts the whole batch with ``InsufficientGas``, honest items included.
:func:`batch_gas_bound` is what the batch can need whatever its receivers do, from the call
data and the allowances alone; the limit is the larger of the two.
"""

from __future__ import annotations

from typing import Final

from verifier.hashing import keccak256

CALL_RESERVE_GAS: Final = 10_000
"""The gateway's ``CALL_RESERVE_GAS`` constant."""
MAX_RESULT_BYTES: Final = 1024
"""The gateway's ``MAX_RESULT_BYTES``: what it copies of a callee's return or revert data."""
BASE_GAS: Final = 21_000 + 50_000
"""Intrinsic cost plus the call's fixed work (relayer check, reentrancy guard, ABI decoding)."""
PER_ITEM_GAS: Final = 100_000
"""Per item besides the callee: cold status and code reads, the status and queue writes
(≈ 50,000), hashing, and the event with up to MAX_RESULT_BYTES of result (≈ 12,000)."""
CALLDATA_GAS_PER_BYTE: Final = 16
ITEM_MEMORY_BYTES: Final = 3 * MAX_RESULT_BYTES
"""Memory per item besides its own call data: the bounded result, the event, the hashes."""
INSUFFICIENT_GAS_SELECTOR: Final = keccak256(b"InsufficientGas()")[:4]


def _memory_gas(size: int) -> int:
    words = (size + 31) // 32
    return 3 * words + words * words // 512


def batch_gas_bound(call_data_size: int, allowances: list[int]) -> int:
    """The gas a ``deliverMessages`` / ``acknowledgeResults`` call with this much call data and
    one callee per allowance can use at most: each callee gets its full allowance (plus the
    1/64 the EVM keeps back and the gateway's reserve), the call data is paid for, and memory
    (never freed within the call) holds twice the call data plus each item's result."""
    memory = 2 * call_data_size + len(allowances) * ITEM_MEMORY_BYTES
    callees = sum(a * 64 // 63 + CALL_RESERVE_GAS + PER_ITEM_GAS for a in allowances)
    return BASE_GAS + CALLDATA_GAS_PER_BYTE * call_data_size + _memory_gas(memory) + callees


def is_insufficient_gas(revert_data: bytes | None) -> bool:
    """Whether revert data is the gateway's ``InsufficientGas()``."""
    return revert_data is not None and revert_data[:4] == INSUFFICIENT_GAS_SELECTOR
