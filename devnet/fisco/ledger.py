"""The ledger tables: blocks, transactions, receipts and nonces, as JSON records in the store."""

from __future__ import annotations

from typing import Any

from devnet.fisco.hashing import HeaderData, LogEntry, ReceiptData, header_hash
from devnet.fisco.store import KeyValueStore

Record = dict[str, Any]


def header_of(block: Record) -> HeaderData:
    return HeaderData(
        version=block["version"],
        parent=tuple((n, bytes.fromhex(h)) for n, h in block["parent"]),
        txs_root=bytes.fromhex(block["txsRoot"]),
        receipts_root=bytes.fromhex(block["receiptsRoot"]),
        state_root=bytes.fromhex(block["stateRoot"]),
        number=block["number"],
        gas_used=block["gasUsed"],
        timestamp=block["timestamp"],
        sealer=block["sealer"],
        sealer_list=tuple(bytes.fromhex(pk) for pk in block["sealerList"]),
        extra_data=bytes.fromhex(block["extraData"]),
        weights=tuple(block["weights"]),
    )


def block_hash_of(block: Record) -> bytes:
    return header_hash(header_of(block))


def receipt_record(receipt: ReceiptData) -> Record:
    return {
        "version": receipt.version,
        "gasUsed": receipt.gas_used,
        "contractAddress": receipt.contract_address,
        "status": receipt.status,
        "output": receipt.output.hex(),
        "logs": [
            [log.address, [t.hex() for t in log.topics], log.data.hex()] for log in receipt.logs
        ],
        "blockNumber": receipt.block_number,
        "message": receipt.message,
    }


def receipt_of(record: Record) -> ReceiptData:
    return ReceiptData(
        version=record["version"],
        gas_used=record["gasUsed"],
        contract_address=record["contractAddress"],
        status=record["status"],
        output=bytes.fromhex(record["output"]),
        logs=tuple(
            LogEntry(addr, tuple(bytes.fromhex(t) for t in topics), bytes.fromhex(data))
            for addr, topics, data in record["logs"]
        ),
        block_number=record["blockNumber"],
        message=record["message"],
    )


class Ledger:
    """Typed access to the records; ``None`` when absent."""

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store
        meta = store.get_json("meta")
        self.meta: Record = meta or {"number": -1, "stateRoot": "", "total": 0, "failed": 0}

    @property
    def number(self) -> int:
        return int(self.meta["number"])

    def block(self, number: int) -> Record | None:
        if number < 0 or number > self.number:
            return None
        value: Record | None = self.store.get_json(f"block:{number}")
        return value

    def number_by_hash(self, block_hash: str) -> int | None:
        value = self.store.get_json(f"blockhash:{block_hash.lower()}")
        return None if value is None else int(value)

    def transaction(self, tx_hash: str) -> Record | None:
        value: Record | None = self.store.get_json(f"tx:{tx_hash.lower()}")
        return value

    def receipt(self, tx_hash: str) -> Record | None:
        value: Record | None = self.store.get_json(f"receipt:{tx_hash.lower()}")
        return value

    def has_nonce(self, nonce: str) -> bool:
        return self.store.get_value(b"n:" + nonce.encode()) is not None

    def abi(self, address: str) -> str | None:
        value: str | None = self.store.get_json(f"abi:{address}")
        return value

    def commit_block(
        self, block: Record, txs: list[Record], receipts: list[Record], abis: dict[str, str]
    ) -> None:
        """Store one block with its transactions and receipts in one write."""
        store = self.store
        for tx, receipt in zip(txs, receipts, strict=True):
            store.put_json(f"tx:{tx['hash']}", tx)
            store.put_json(f"receipt:{tx['hash']}", receipt)
            store[b"n:" + tx["nonce"].encode()] = b"1"
        for address, abi in abis.items():
            store.put_json(f"abi:{address}", abi)
        store.put_json(f"block:{block['number']}", block)
        store.put_json(f"blockhash:{block['hash']}", block["number"])
        self.meta = {
            "number": block["number"],
            "stateRoot": block["stateRoot"],
            "total": self.meta["total"] + len(txs),
            "failed": self.meta["failed"] + sum(1 for r in receipts if r["status"] != 0),
        }
        store.put_json("meta", self.meta)
        store.commit()
