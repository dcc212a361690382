"""The node's hash rules, written independently of ``verifier/`` so that each checks the other.

Header, transaction and receipt hashes are plain field concatenations (spec sections 2.2, 3.1,
3.2); the Merkle tree is binary with the lone last node re-hashed alone (section 3.3).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from verifier.hashing import keccak256

ZERO_HASH = b"\x00" * 32


def _i32(value: int) -> bytes:
    return struct.pack(">i", value)


def _i64(value: int) -> bytes:
    return struct.pack(">q", value)


@dataclass(frozen=True)
class LogEntry:
    address: str  # 40 lowercase hex chars, no 0x
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class ReceiptData:
    version: int
    gas_used: str
    contract_address: str  # 40 lowercase hex chars or ""
    status: int
    output: bytes
    logs: tuple[LogEntry, ...]
    block_number: int
    message: str = ""


@dataclass(frozen=True)
class TransactionData:
    version: int
    chain_id: str
    group_id: str
    block_limit: int
    nonce: str
    to: str
    input: bytes
    abi: str


@dataclass(frozen=True)
class HeaderData:
    version: int
    parent: tuple[tuple[int, bytes], ...]
    txs_root: bytes
    receipts_root: bytes
    state_root: bytes
    number: int
    gas_used: str
    timestamp: int
    sealer: int
    sealer_list: tuple[bytes, ...]
    extra_data: bytes
    weights: tuple[int, ...] = field(default=())


def transaction_hash(tx: TransactionData) -> bytes:
    buf = _i32(tx.version) + tx.chain_id.encode() + tx.group_id.encode() + _i64(tx.block_limit)
    buf += tx.nonce.encode() + tx.to.encode() + tx.input + tx.abi.encode()
    return keccak256(buf)


def receipt_hash(receipt: ReceiptData) -> bytes:
    buf = _i32(receipt.version) + receipt.gas_used.encode() + receipt.contract_address.encode()
    buf += _i32(receipt.status) + receipt.output
    for log in receipt.logs:
        buf += log.address.encode() + b"".join(log.topics) + log.data
    buf += _i64(receipt.block_number)
    return keccak256(buf)


def header_hash(header: HeaderData) -> bytes:
    """The hash a real node gives; block 0 has empty roots and an empty gasUsed (section 2.2)."""
    buf = _i32(header.version)
    for number, block_hash in header.parent:
        buf += _i64(number) + block_hash
    if header.number != 0:
        buf += header.txs_root + header.receipts_root + header.state_root
    buf += _i64(header.number) + (header.gas_used.encode() if header.number != 0 else b"")
    buf += _i64(header.timestamp) + _i64(header.sealer)
    buf += b"".join(header.sealer_list) + header.extra_data
    buf += b"".join(_i64(w) for w in header.weights)
    return keccak256(buf)


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        levels.append([keccak256(b"".join(level[i : i + 2])) for i in range(0, len(level), 2)])
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return ZERO_HASH
    return _levels(leaves)[-1][0]


def _count_marker(count: int) -> str:
    return struct.pack(">I", count).hex() + "0" * 56


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[str]:
    """The node's flat proof: per level a count marker then the (1 or 2) nodes of the pair."""
    if len(leaves) == 1:
        return [leaves[0].hex()]
    proof: list[str] = []
    for level in _levels(leaves)[:-1]:
        start = index - index % 2
        group = level[start : start + 2]
        proof.append(_count_marker(len(group)))
        proof.extend(node.hex() for node in group)
        index //= 2
    return proof


def checksum_address(address_hex: str) -> str:
    """EIP-55 style mixed case using the chain hash over the lowercase hex (no 0x)."""
    digest = keccak256(address_hex.encode()).hex()
    return "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c
        for i, c in enumerate(address_hex)
    )
