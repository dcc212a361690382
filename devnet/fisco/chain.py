"""Block production: admission like the node's txpool, execution, roots, PBFT signatures."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from coincurve import PublicKey

from devnet.fisco.errors import (
    MSG_HASH_MISMATCH,
    ExecutionCancelled,
    MalformedTransaction,
    RpcError,
    TransactionStatus,
    rejected,
)
from devnet.fisco.evm import (
    CALL_ADDRESS_ERROR,
    DEFAULT_TX_GAS_LIMIT,
    BlockExecution,
    EvmExecutor,
    ExecutionResult,
    error_output,
)
from devnet.fisco.hashing import (
    ReceiptData,
    merkle_root,
    receipt_hash,
    transaction_hash,
)
from devnet.fisco.keys import SealerKey, derive_private_key, recover_public_key, sealer_keys
from devnet.fisco.ledger import Ledger, Record, block_hash_of, receipt_record
from devnet.fisco.store import KeyValueStore
from devnet.fisco.tars import WireTransaction, decode_transaction
from verifier.hashing import keccak256

_ADDRESS_DIGITS = re.compile(r"[0-9a-fA-F]{40}")

COMPATIBILITY_VERSION = 0x03030000  # 3.3.0: tx JSON nonce is hex of the nonce bytes
SUPPORTED_TX_VERSION = 0  # TransactionData fields 1-8 only (spec 3.1)
DEFAULT_BLOCK_TIME_LIMIT_S = 10.0  # wall-clock cap on executing one block or one call
BLOCK_LIMIT_RANGE = 1000
TX_COUNT_LIMIT = 1000


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ChainConfig:
    chain_id: str = "chain0"
    group_id: str = "group0"
    sealers: int = 4
    seed: str = "devnode"
    clock: Callable[[], int] = field(default=_wall_clock_ms)
    tx_gas_limit: int = DEFAULT_TX_GAS_LIMIT
    block_time_limit_s: float = DEFAULT_BLOCK_TIME_LIMIT_S


@dataclass
class _Pending:
    tx: Record
    done: asyncio.Future[Record]


@dataclass(frozen=True)
class Decoded:
    wire: WireTransaction
    tx_hash: bytes


@dataclass(frozen=True)
class Batch:
    pending: list[_Pending]
    number: int
    timestamp: int  # ms, taken on the event loop (the clock need not be thread-safe)


@dataclass(frozen=True)
class Sealed:
    block: Record
    receipts: list[Record]
    deferred: list[_Pending]  # not started within the block's wall-clock cap


def genesis_text(config: ChainConfig, keys: tuple[SealerKey, ...]) -> str:
    admin = keccak256(bytes.fromhex(derive_private_key(config.seed, "admin").hex()))[12:].hex()
    nodes = "".join(f"node.{i}:{k.node_id},1\n" for i, k in enumerate(keys))
    return (
        f"[chain]\nsm_crypto:0\nchainID: {config.chain_id}\ngrouID: {config.group_id}\n"
        "[consensys]\nconsensus_type: pbft\nblock_tx_count_limit:1000\nleader_period:1\n"
        "[version]\ncompatibility_version:3.3.0\n[tx]\ngaslimit:3000000000\n"
        f"[executor]\niswasm: 0\nisAuthCheck:0\nauthAdminAccount:0x{admin}\n"
        f"isSerialExecute:1\n{nodes}"
    )


def quorum(count: int) -> int:
    return count - (count - 1) // 3


class Chain:
    def __init__(
        self, config: ChainConfig, store: KeyValueStore, stop: threading.Event | None = None
    ) -> None:
        self.config = config
        self.keys = sealer_keys(config.seed, config.sealers)
        self.ledger = Ledger(store)
        root = self.ledger.meta["stateRoot"]
        state_root = bytes.fromhex(root) if root else None
        self.evm = EvmExecutor(store, state_root, tx_gas_limit=config.tx_gas_limit, stop=stop)
        self._pool: list[_Pending] = []
        self._pool_nonces: set[str] = set()
        self._pool_hashes: set[str] = set()
        if self.ledger.number < 0:
            self._write_genesis()
        genesis = self.ledger.block(0)
        if (
            genesis is None
            or genesis["extraData"] != genesis_text(config, self.keys).encode().hex()
        ):
            raise RpcError(-1, "data dir holds a different chain (seed, sealers or ids differ)")

    @property
    def local_key(self) -> SealerKey:
        """The sealer this devnode answers as (the first in consensus order)."""
        return self.keys[0]

    @property
    def block_number(self) -> int:
        return self.ledger.number

    @property
    def pending_count(self) -> int:
        return len(self._pool)

    def _write_genesis(self) -> None:
        block: Record = {
            "version": COMPATIBILITY_VERSION,
            "parent": [],
            "txsRoot": "",
            "receiptsRoot": "",
            "stateRoot": "",
            "number": 0,
            "gasUsed": "",
            "timestamp": 0,
            "sealer": 0,
            "sealerList": [],
            "weights": [],
            "signatures": [],
            "txs": [],
            "extraData": genesis_text(self.config, self.keys).encode().hex(),
        }
        block["hash"] = block_hash_of(block).hex()
        self.ledger.commit_block(block, [], [], {})

    # ---- admission -------------------------------------------------------------------------
    @staticmethod
    def decode(raw: bytes, stop: threading.Event | None = None) -> Decoded:
        """TARS decoding and hashing: pure, so it may run off the event loop.

        Only version 0 is implemented: later versions hash more fields (spec 3.1), so they are
        refused as malformed rather than admitted under the wrong hash and sender.
        """
        try:
            wire = decode_transaction(raw, stop)
        except MalformedTransaction as exc:
            raise RpcError(-1, f"std::exception::what: {exc}\n") from exc
        if wire.data.version != SUPPORTED_TX_VERSION:
            raise rejected(TransactionStatus.MALFORM)
        tx_hash = transaction_hash(wire.data)
        if wire.data_hash and wire.data_hash != tx_hash:
            raise RpcError(-1, MSG_HASH_MISMATCH)
        return Decoded(wire, tx_hash)

    def admit(self, decoded: Decoded) -> Record:
        """Check a decoded transaction like the node's txpool; the record to queue, or RpcError.

        Order of MemoryStorage::verifyAndSubmitTransaction and TxValidator::verify (v3.3.0):
        pool hash, group, chain, pool nonce, ledger nonce, blockLimit, signature.
        """
        wire, tx_hash = decoded.wire, decoded.tx_hash
        data = wire.data
        hex_hash = tx_hash.hex()
        if hex_hash in self._pool_hashes:
            raise rejected(TransactionStatus.ALREADY_IN_TX_POOL)
        if data.group_id != self.config.group_id:
            raise rejected(TransactionStatus.INVALID_GROUP_ID)
        if data.chain_id != self.config.chain_id:
            raise rejected(TransactionStatus.INVALID_CHAIN_ID)
        # TxValidator::verify: pool nonce, then LedgerNonceChecker (ledger nonce, blockLimit),
        # and only then the signature.
        if data.nonce in self._pool_nonces or self.ledger.has_nonce(data.nonce):
            raise rejected(TransactionStatus.NONCE_CHECK_FAIL)
        current = self.block_number
        if not current < data.block_limit <= current + BLOCK_LIMIT_RANGE:
            raise rejected(TransactionStatus.BLOCK_LIMIT_CHECK_FAIL)
        sender = self._recover_sender(tx_hash, wire)
        return {
            "version": data.version,
            "chainID": data.chain_id,
            "groupID": data.group_id,
            "blockLimit": data.block_limit,
            "nonce": data.nonce,
            "to": data.to,
            "input": data.input.hex(),
            "abi": data.abi,
            "signature": wire.signature.hex(),
            "importTime": self.config.clock(),
            "extraData": wire.extra_data,
            "from": sender.hex(),
            "hash": hex_hash,
        }

    @staticmethod
    def _recover_sender(tx_hash: bytes, wire: WireTransaction) -> bytes:
        signature = wire.signature
        if len(signature) != 65 or signature[64] > 1:
            raise rejected(TransactionStatus.INVALID_SIGNATURE)
        try:
            public = recover_public_key(tx_hash, signature)
            PublicKey(b"\x04" + public)
        except ValueError as exc:
            raise rejected(TransactionStatus.INVALID_SIGNATURE) from exc
        return keccak256(public)[12:]

    def enqueue(self, tx: Record) -> asyncio.Future[Record]:
        """Put an admitted transaction in the pool; the future resolves with its receipt."""
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        self._pool.append(_Pending(tx, future))
        self._pool_nonces.add(tx["nonce"])
        self._pool_hashes.add(tx["hash"])
        return future

    def abandon_pool(self) -> None:
        """The node is stopping: every waiting sender gets ExecutionCancelled."""
        pool, self._pool = self._pool, []
        self.fail(Batch(pool, 0, 0), ExecutionCancelled("the node is stopping"))

    # ---- sealing: take_batch and settle on the event loop, execute in the EVM worker ----------
    def take_batch(self) -> Batch | None:
        """The next block's transactions (up to the block limit), number and timestamp."""
        if not self._pool:
            return None
        pending, self._pool = self._pool[:TX_COUNT_LIMIT], self._pool[TX_COUNT_LIMIT:]
        return Batch(pending, self.block_number + 1, self.config.clock())

    def execute(self, batch: Batch) -> Sealed:
        """Run the batch into one signed, committed block (the EVM worker thread only).

        Within the wall-clock cap per block: a transaction that reaches it fails out of gas,
        and those not started by then wait for the next block. The first always runs.
        """
        number, timestamp = batch.number, batch.timestamp
        parent = self.ledger.block(number - 1)
        assert parent is not None
        execution = self.evm.block(number, timestamp)
        txs: list[Record] = []
        receipts: list[Record] = []
        abis: dict[str, str] = {}
        watch = self.evm.watch
        with watch.limit(self.config.block_time_limit_s):
            for index, pending in enumerate(batch.pending):
                if index and watch.expired:
                    break
                tx = dict(pending.tx, blockNumber=number, index=index)
                receipts.append(self._execute(execution, tx, number, index, abis))
                txs.append(tx)
            state_root = execution.finish()
        tx_hashes = [bytes.fromhex(t["hash"]) for t in txs]
        receipt_hashes = [bytes.fromhex(r["hash"]) for r in receipts]
        leader = number % len(self.keys)
        block: Record = {
            "version": COMPATIBILITY_VERSION,
            "parent": [[number - 1, parent["hash"]]],
            "txsRoot": merkle_root(tx_hashes).hex(),
            "receiptsRoot": merkle_root(receipt_hashes).hex(),
            "stateRoot": state_root.hex(),
            "number": number,
            "gasUsed": str(sum(int(r["gasUsed"]) for r in receipts)),
            "timestamp": timestamp,
            "sealer": leader,
            "sealerList": [k.public_key.hex() for k in self.keys],
            "extraData": "",
            "weights": [1] * len(self.keys),
            "txs": [t["hash"] for t in txs],
        }
        digest = block_hash_of(block)
        block["hash"] = digest.hex()
        signers = sorted((leader + k) % len(self.keys) for k in range(quorum(len(self.keys))))
        block["signatures"] = [[i, self.keys[i].sign(digest).hex()] for i in signers]
        self.ledger.commit_block(block, txs, receipts, abis)
        return Sealed(block, receipts, batch.pending[len(txs) :])

    def settle(self, batch: Batch, sealed: Sealed) -> None:
        """Answer the senders of a sealed block; the deferred go back to the front of the pool."""
        done = batch.pending[: len(batch.pending) - len(sealed.deferred)]
        self._pool[:0] = sealed.deferred
        for pending, receipt in zip(done, sealed.receipts, strict=True):
            self._release(pending)
            if not pending.done.done():
                pending.done.set_result(receipt)

    def fail(self, batch: Batch, error: Exception) -> None:
        """The batch was not sealed: its senders get ``error``."""
        for pending in batch.pending:
            self._release(pending)
            if not pending.done.done():
                pending.done.set_exception(error)

    def _release(self, pending: _Pending) -> None:
        self._pool_nonces.discard(pending.tx["nonce"])
        self._pool_hashes.discard(pending.tx["hash"])

    def _execute(
        self, execution: BlockExecution, tx: Record, number: int, index: int, abis: dict[str, str]
    ) -> Record:
        sender = bytes.fromhex(tx["from"])
        data = bytes.fromhex(tx["input"])
        contract = ""
        result: ExecutionResult | None
        if tx["to"] == "":
            address = keccak256(f"{number}_{index}_0".encode())[:20]
            result = execution.apply(sender, None, data, address)
            output = result.output
            if result.status == TransactionStatus.NONE:
                contract = address.hex()
                abis[contract] = tx["abi"]
                output = b""  # a deploy clears the data (the code is stored, not returned)
        else:
            to = _parse_address(tx["to"])
            # A ``to`` that is no address names no contract table: the no-code path.
            result = None if to is None else execution.apply(sender, to, data, b"")
            output = _call_address_error() if result is None else result.output
        # Receipt ``message`` stays "": v3.3.0's BlockExecutive::onTxFinish builds the receipt
        # without the executive's message (createReceipt takes none).
        receipt = ReceiptData(
            version=0,
            gas_used=str(0 if result is None else result.gas_used),
            contract_address=contract,
            status=int(TransactionStatus.CALL_ADDRESS_ERROR if result is None else result.status),
            output=output,
            logs=() if result is None else result.logs,
            block_number=number,
        )
        record = receipt_record(receipt)
        record["hash"] = receipt_hash(receipt).hex()
        return record

    def call(self, to: str, data: bytes, number: int, timestamp_ms: int) -> tuple[int, bytes]:
        """An eth call against the latest state (the EVM worker thread only)."""
        address = _parse_address(to)
        if address is None:
            return int(TransactionStatus.CALL_ADDRESS_ERROR), _call_address_error()
        with self.evm.watch.limit(self.config.block_time_limit_s):
            result = self.evm.call(address, data, number, timestamp_ms)
        return int(result.status), result.output

    def get_code(self, to: str) -> bytes:
        """The code at ``to`` (the EVM worker thread only)."""
        address = _parse_address(to)
        return b"" if address is None else self.evm.get_code(address)


def _call_address_error() -> bytes:
    return error_output(CALL_ADDRESS_ERROR)


def _parse_address(text: str) -> bytes | None:
    """The 20 bytes a ``to`` of 40 hex digits (``0x`` optional) names, else None.

    Only hex digits: ``bytes.fromhex`` alone would also take spaces, turning a 40-character
    text into a shorter address that a real node would not call."""
    body = text[2:] if text[:2] in ("0x", "0X") else text
    if not _ADDRESS_DIGITS.fullmatch(body):
        return None
    return bytes.fromhex(body)
