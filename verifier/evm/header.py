"""Ethereum block headers: the block hash recomputed from ``eth_getBlockByNumber`` JSON.

``hash = keccak256(rlp(fields))`` over the 15 Frontier fields and then a contiguous tail of
optional fields, each added by a fork (go-ethereum ``core/types/block.go`` ``Header``, where
they are ``rlp:"optional"``; EELS ``ethereum/forks/prague/blocks.py``):

=====  ======================  ===========================
16     baseFeePerGas           London (EIP-1559)
17     withdrawalsRoot         Shanghai (EIP-4895)
18-19  blobGasUsed, excessBlobGas  Cancun (EIP-4844)
20     parentBeaconBlockRoot   Cancun (EIP-4788)
21     requestsHash            Prague (EIP-7685)
=====  ======================  ===========================

A missing key and a JSON ``null`` both mean absent (pre-London nodes print
``"baseFeePerGas": null``). A present field after an absent one is a gap and is rejected:
geth could not have encoded it. Fields that are not hashed (``hash``, ``size``,
``totalDifficulty``, ``transactions``, ``uncles``, ``withdrawals``...) are ignored. The tail is
a parameter, so a chain or a later fork with more fields needs no change here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from verifier.encoding import parse_object
from verifier.errors import MalformedEvidence, ProofMismatch
from verifier.evm.fields import UINT64_BYTES, data_bytes, is_absent, quantity_bytes
from verifier.hashing import keccak256
from verifier.rlp import encode

QUANTITY: Final = -1
"""Field kind: a hex quantity, encoded as minimal big-endian bytes."""
DATA: Final = -2
"""Field kind: hex data of any length (``extraData``)."""

FieldSpec = tuple[str, int]
"""``(JSON-RPC key, kind)``: a byte length for fixed-size data, or QUANTITY or DATA."""

BASE_FIELDS: Final[tuple[FieldSpec, ...]] = (
    ("parentHash", 32),
    ("sha3Uncles", 32),
    ("miner", 20),
    ("stateRoot", 32),
    ("transactionsRoot", 32),
    ("receiptsRoot", 32),
    ("logsBloom", 256),
    ("difficulty", QUANTITY),
    ("number", QUANTITY),
    ("gasLimit", QUANTITY),
    ("gasUsed", QUANTITY),
    ("timestamp", QUANTITY),
    ("extraData", DATA),
    ("mixHash", 32),
    ("nonce", 8),
)
OPTIONAL_FIELDS: Final[tuple[FieldSpec, ...]] = (
    ("baseFeePerGas", QUANTITY),
    ("withdrawalsRoot", 32),
    ("blobGasUsed", QUANTITY),
    ("excessBlobGas", QUANTITY),
    ("parentBeaconBlockRoot", 32),
    ("requestsHash", 32),
)
_UINT64_FIELDS: Final = frozenset({"number", "gasLimit", "gasUsed", "timestamp"})
_PATH: Final = "block"


@dataclass(frozen=True, slots=True)
class EvmHeader:
    """A header whose ``hash`` was recomputed here; optional fields are None when absent."""

    hash: bytes
    number: int
    parent_hash: bytes
    state_root: bytes
    transactions_root: bytes
    receipts_root: bytes
    logs_bloom: bytes
    miner: bytes
    gas_limit: int
    gas_used: int
    timestamp: int
    extra_data: bytes
    base_fee_per_gas: int | None
    withdrawals_root: bytes | None
    parent_beacon_block_root: bytes | None
    requests_hash: bytes | None
    field_count: int


def header_fields(
    block: Mapping[str, Any], *, optional_fields: Sequence[FieldSpec] = OPTIONAL_FIELDS
) -> dict[str, bytes]:
    """The hashed fields of ``block`` in header order, each as the bytes RLP commits to."""
    block = parse_object(block, _PATH)
    fields = {name: _field(block, name, kind) for name, kind in BASE_FIELDS}
    first_absent: str | None = None
    for name, kind in optional_fields:
        if is_absent(block, name):
            first_absent = first_absent or name
        elif first_absent is not None:
            raise MalformedEvidence(
                f"present although {first_absent} is absent: optional header fields must form "
                "a contiguous tail",
                field=f"{_PATH}.{name}",
                check="header_fields",
            )
        else:
            fields[name] = _field(block, name, kind)
    return fields


def encode_header(
    block: Mapping[str, Any], *, optional_fields: Sequence[FieldSpec] = OPTIONAL_FIELDS
) -> bytes:
    """The header's RLP, what ``debug_getRawHeader`` returns."""
    return encode(list(header_fields(block, optional_fields=optional_fields).values()))


def compute_block_hash(
    block: Mapping[str, Any], *, optional_fields: Sequence[FieldSpec] = OPTIONAL_FIELDS
) -> bytes:
    """``keccak256(rlp(header))`` from the JSON block object."""
    return keccak256(encode_header(block, optional_fields=optional_fields))


def parse_header(
    block: Mapping[str, Any], *, optional_fields: Sequence[FieldSpec] = OPTIONAL_FIELDS
) -> EvmHeader:
    """The header with its recomputed hash. The claimed ``hash`` key is not looked at."""
    fields = header_fields(block, optional_fields=optional_fields)
    digest = keccak256(encode(list(fields.values())))

    def uint(name: str) -> int:
        return int.from_bytes(fields[name], "big")

    def optional_uint(name: str) -> int | None:
        return uint(name) if name in fields else None

    return EvmHeader(
        hash=digest,
        number=uint("number"),
        parent_hash=fields["parentHash"],
        state_root=fields["stateRoot"],
        transactions_root=fields["transactionsRoot"],
        receipts_root=fields["receiptsRoot"],
        logs_bloom=fields["logsBloom"],
        miner=fields["miner"],
        gas_limit=uint("gasLimit"),
        gas_used=uint("gasUsed"),
        timestamp=uint("timestamp"),
        extra_data=fields["extraData"],
        base_fee_per_gas=optional_uint("baseFeePerGas"),
        withdrawals_root=fields.get("withdrawalsRoot"),
        parent_beacon_block_root=fields.get("parentBeaconBlockRoot"),
        requests_hash=fields.get("requestsHash"),
        field_count=len(fields),
    )


def verify_block_hash(
    block: Mapping[str, Any],
    expected: bytes,
    *,
    optional_fields: Sequence[FieldSpec] = OPTIONAL_FIELDS,
) -> EvmHeader:
    """Parse ``block``; raise ProofMismatch (check ``block_hash``) unless it hashes to expected."""
    header = parse_header(block, optional_fields=optional_fields)
    if header.hash != expected:
        raise ProofMismatch(
            "block hash recomputed from the header fields differs",
            check="block_hash",
            expected="0x" + expected.hex(),
            computed="0x" + header.hash.hex(),
        )
    return header


def _field(block: Mapping[str, Any], name: str, kind: int) -> bytes:
    if kind == QUANTITY:
        max_bytes = UINT64_BYTES if name in _UINT64_FIELDS else 32
        return quantity_bytes(block, name, _PATH, max_bytes=max_bytes)
    return data_bytes(block, name, _PATH, length=None if kind == DATA else kind)
