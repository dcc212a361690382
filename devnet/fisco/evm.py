"""Contract execution with py-evm (London rules: no PUSH0, as FISCO BCOS 3.x's evmone).

The state lives in the node's key-value store, so with ``--data-dir`` contract storage survives
a restart; the block's state root goes into the header's ``stateRoot``.

py-evm runs about a million opcodes a second, so the node's 3,000,000,000 gas per transaction
would let one endless loop run for ten minutes. Each executor therefore has a per-transaction
gas cap and an ``ExecutionWatch``: every opcode first checks it, so code stops within one
opcode of a wall-clock deadline (as if out of gas) or of the node stopping
(``ExecutionCancelled``, which unwinds the whole call stack and leaves the state untouched).

The KECCAK256 opcode (0x20) hashes with Keccak-256 unless the executor is given
``opcode_hash=HashScheme.SM3``: on a FISCO BCOS 3.x chain with ``sm_crypto=true`` that opcode is
SM3 (docs/sm-crypto.md, "Hash opcode on SM chains"). Only 0x20 changes; CREATE2 addresses and
EXTCODEHASH stay Keccak-256 here.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from eth._utils.numeric import ceil32
from eth.constants import BLANK_ROOT_HASH, CREATE_CONTRACT_ADDRESS, GAS_SHA3WORD, ZERO_ADDRESS
from eth.db.atomic import AtomicDB
from eth.exceptions import (
    ContractCreationCollision,
    FullStack,
    InsufficientStack,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfBoundsRead,
    OutOfGas,
    Revert,
    StackDepthLimit,
    WriteProtection,
)
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.london import LondonVM
from eth.vm.forks.london.computation import LondonComputation
from eth.vm.message import Message
from eth_typing import Address, BlockNumber, Hash32

from devnet.fisco.errors import ExecutionCancelled, TransactionStatus
from devnet.fisco.hashing import LogEntry
from devnet.fisco.store import KeyValueStore
from verifier.hashing import Hasher, HashScheme, hasher_for, keccak256

NODE_TX_GAS_LIMIT = 3_000_000_000  # genesis ``[tx] gaslimit`` of a real node
DEFAULT_TX_GAS_LIMIT = 30_000_000  # an endless loop: about 10 s of py-evm on a 2020s core

# ``TransactionExecutive::parseEVMCResult`` (v3.3.0): the status of each EVMC failure and the
# Error(string) text it writes to the output for block version >= 3.1 (a revert keeps its data).
_STATIC_MODE = "Execution tried to execute an operation which is restricted in static mode."
_ERROR_STATUS: tuple[tuple[type[BaseException], TransactionStatus, str], ...] = (
    (Revert, TransactionStatus.REVERT_INSTRUCTION, ""),
    (OutOfGas, TransactionStatus.OUT_OF_GAS, "Execution out of gas."),
    (
        InvalidJumpDestination,
        TransactionStatus.BAD_JUMP_DESTINATION,
        "Execution has violated the jump destination restrictions.",
    ),
    (InvalidInstruction, TransactionStatus.BAD_INSTRUCTION, "Execution invalid/undefined opcode."),
    (
        InsufficientStack,
        TransactionStatus.STACK_UNDERFLOW,
        "Execution needs more items on EVM stack.",
    ),
    (
        OutOfBoundsRead,
        TransactionStatus.STACK_UNDERFLOW,
        "Execution tried to read outside memory bounds.",
    ),
    (FullStack, TransactionStatus.OUT_OF_STACK, "Execution stack overflow."),
    (StackDepthLimit, TransactionStatus.OUT_OF_STACK, "Execution stack overflow."),
    (WriteProtection, TransactionStatus.UNKNOWN, _STATIC_MODE),
    (ContractCreationCollision, TransactionStatus.CONTRACT_ADDRESS_ALREADY_USED, ""),
)
CALL_ADDRESS_ERROR = "Call address error."


def error_output(message: str) -> bytes:
    """``writeErrInfoToOutput``: ABI ``Error(string)`` (selector 0x08c379a0)."""
    text = message.encode()
    padded = text + b"\x00" * (-len(text) % 32)
    head = (32).to_bytes(32, "big") + len(text).to_bytes(32, "big")
    return keccak256(b"Error(string)")[:4] + head + padded


@dataclass(frozen=True)
class ExecutionResult:
    status: TransactionStatus
    output: bytes
    gas_used: int
    logs: tuple[LogEntry, ...]


def _failure(error: BaseException, output: bytes) -> tuple[TransactionStatus, bytes]:
    for kind, status, message in _ERROR_STATUS:
        if isinstance(error, kind):
            return status, (error_output(message) if message else output)
    return TransactionStatus.UNKNOWN, b""


class ExecutionWatch:
    """Stops EVM code running in another thread: at ``deadline`` or when ``stop`` is set."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.deadline = math.inf  # time.monotonic() value; set per block or call

    @property
    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        """Run the ``with`` body under a deadline ``seconds`` from now."""
        self.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            self.deadline = math.inf

    def check(self) -> None:
        if self.stop.is_set():
            raise ExecutionCancelled("the node is stopping")
        if time.monotonic() > self.deadline:
            raise OutOfGas("the devnode's wall-clock cap on execution was reached")


def _guarded(watch: ExecutionWatch, opcode: Callable[..., None]) -> Callable[..., None]:
    def run(computation: Any) -> None:
        watch.check()
        opcode(computation=computation)

    return run


_KECCAK256_OPCODE = 0x20


def _hash_opcode(hasher: Hasher) -> Any:
    """London's KECCAK256 opcode (same gas, memory expansion, stack use) hashing with ``hasher``."""
    london = LondonComputation.opcodes[_KECCAK256_OPCODE]

    def logic(computation: Any) -> None:
        start, size = computation.stack_pop_ints(2)
        computation.extend_memory(start, size)
        data = computation.memory_read_bytes(start, size)
        computation.consume_gas(GAS_SHA3WORD * (ceil32(len(data)) // 32), reason="SHA3: word gas")
        computation.stack_push_bytes(hasher(bytes(data)))

    return type(london).as_opcode(logic, london.mnemonic, london.gas_cost)


def _state_class(watch: ExecutionWatch, opcode_hash: HashScheme = HashScheme.KECCAK256) -> Any:
    """London state whose computations check ``watch`` before every opcode.

    ``opcode_hash`` is the KECCAK256 opcode's hash; for Keccak-256 London's own opcode is kept.
    """
    table = dict(LondonComputation.opcodes)
    if opcode_hash is not HashScheme.KECCAK256:
        table[_KECCAK256_OPCODE] = _hash_opcode(hasher_for(opcode_hash))
    opcodes = {code: _guarded(watch, fn) for code, fn in table.items()}
    computation = type("WatchedComputation", (LondonComputation,), {"opcodes": opcodes})
    london: Any = LondonVM.get_state_class()
    return type("WatchedState", (london,), {"computation_class": computation})


class BlockExecution:
    """One block's state: execute transactions in order, then ``finish`` for the state root.

    ``timestamp_ms`` is the header's timestamp; contracts see it unchanged in ``block.timestamp``
    (milliseconds, as on a real node: FISCO-BCOS issue 4604).
    """

    def __init__(self, executor: EvmExecutor, number: int, timestamp_ms: int) -> None:
        self._executor = executor
        self._gas = executor.tx_gas_limit
        context = ExecutionContext(
            coinbase=ZERO_ADDRESS,
            timestamp=timestamp_ms,
            block_number=BlockNumber(number),
            difficulty=0,
            mix_hash=Hash32(b"\x00" * 32),
            gas_limit=self._gas,
            prev_hashes=(),
            chain_id=1,
            base_fee_per_gas=0,
        )
        self.state: Any = executor.state_class(executor.db, context, executor.state_root)

    def apply(
        self, sender: bytes, to: bytes | None, data: bytes, create_address: bytes
    ) -> ExecutionResult:
        state = self.state
        snapshot = state.snapshot()
        tx_context = state.get_transaction_context_class()(gas_price=0, origin=sender)
        if to is None:
            message = Message(
                gas=self._gas,
                to=CREATE_CONTRACT_ADDRESS,
                sender=Address(sender),
                value=0,
                data=b"",
                code=data,
                create_address=Address(create_address),
            )
            computation = state.computation_class.apply_create_message(state, message, tx_context)
        else:
            if not state.get_code(to):  # no contract table: CallAddressError, nothing executed
                return ExecutionResult(
                    TransactionStatus.CALL_ADDRESS_ERROR, error_output(CALL_ADDRESS_ERROR), 0, ()
                )
            message = Message(
                gas=self._gas,
                to=Address(to),
                sender=Address(sender),
                value=0,
                data=data,
                code=state.get_code(to),
                code_address=Address(to),
            )
            computation = state.computation_class.apply_message(state, message, tx_context)
        gas_used = self._gas - computation.get_gas_remaining()
        if computation.is_error:
            state.revert(snapshot)
            status, output = _failure(computation.error, computation.output)
            return ExecutionResult(status, output, gas_used, ())
        state.commit(snapshot)
        logs = tuple(
            LogEntry(address.hex(), tuple(t.to_bytes(32, "big") for t in topics), bytes(data))
            for address, topics, data in computation.get_log_entries()
        )
        return ExecutionResult(TransactionStatus.NONE, computation.output, gas_used, logs)

    def finish(self) -> bytes:
        self.state.persist()
        root: bytes = self.state.state_root
        self._executor.state_root = root
        return root


class EvmExecutor:
    """The EVM over the store; use it from one thread at a time (the node's EVM worker).

    ``opcode_hash`` is the chain's hash for the KECCAK256 opcode: SM3 on an SM chain.
    """

    def __init__(
        self,
        store: KeyValueStore,
        state_root: bytes | None,
        *,
        tx_gas_limit: int = DEFAULT_TX_GAS_LIMIT,
        stop: threading.Event | None = None,
        opcode_hash: HashScheme = HashScheme.KECCAK256,
    ) -> None:
        self.db = AtomicDB(store)
        self.state_root: bytes = state_root or BLANK_ROOT_HASH
        self.tx_gas_limit = tx_gas_limit
        self.watch = ExecutionWatch(stop or threading.Event())
        self.opcode_hash = opcode_hash
        self.state_class = _state_class(self.watch, opcode_hash)

    def block(self, number: int, timestamp_ms: int) -> BlockExecution:
        return BlockExecution(self, number, timestamp_ms)

    def call(self, to: bytes, data: bytes, number: int, timestamp_ms: int) -> ExecutionResult:
        """Execute against the latest state and throw the changes away."""
        block = BlockExecution(self, number, timestamp_ms)
        return block.apply(ZERO_ADDRESS, to, data, b"")

    def get_code(self, address: bytes) -> bytes:
        code: bytes = BlockExecution(self, 0, 0).state.get_code(address)
        return code
